"""Assets that PyBullet would load wrongly or noisily are refused with a message naming file and element;
PyBullet's native output stays off the user's stdout; atomic writes respect the umask."""

import logging
import os
import re
import warnings

import numpy as np
import pytest
from conftest import CUBE_OBJ

from partrm_gym import scene as scene_module
from partrm_gym.assets.partnet import AssetError, load_partnet_folder
from partrm_gym.assets.procedural import generate
from partrm_gym.io import atomic_write_bytes, atomic_write_text
from partrm_gym.scene import NativeOutput, Scene, SceneError, captured_native_output

# -- meshes ---------------------------------------------------------------------------------------------


def write_mesh_urdf(tmp_path, mesh_bytes, mesh_name="door.obj"):
    """A base box and one revolute door whose visual and collision are the given mesh file."""
    (tmp_path / "meshes").mkdir(exist_ok=True)
    (tmp_path / "meshes" / mesh_name).write_bytes(mesh_bytes)
    geometry = f'<geometry><mesh filename="meshes/{mesh_name}" scale="0.02 0.5 0.8"/></geometry>'
    urdf = tmp_path / "object.urdf"
    urdf.write_text(f"""<?xml version="1.0"?>
<robot name="mesh_object">
  <link name="base">
    <visual><geometry><box size="0.4 0.5 0.8"/></geometry></visual>
    <collision><geometry><box size="0.4 0.5 0.8"/></geometry></collision>
  </link>
  <link name="door_link">
    <visual>{geometry}</visual>
    <collision>{geometry}</collision>
  </link>
  <joint name="door_joint" type="revolute">
    <parent link="base"/><child link="door_link"/>
    <origin xyz="0.21 0 0"/><axis xyz="0 0 1"/>
    <limit lower="0" upper="1.5"/>
  </joint>
</robot>
""")
    return urdf


def test_valid_obj_mesh_loads(tmp_path):
    """Positive control for the mesh checks below: a tiny valid .obj passes validation and loads."""
    with Scene(write_mesh_urdf(tmp_path, CUBE_OBJ.encode())) as scene:
        assert [j.name for j in scene.joints] == ["door_joint"]


@pytest.mark.parametrize("content, problem", [
    (b"", r"is empty \(0 bytes\)"),
    (np.random.default_rng(0).bytes(4096), r"no vertex \('v'\) line and no face \('f'\) line"),
    (b"# exported by hand\nvt 0 0\nvn 0 0 1\nf 1 2 3\n", r"no vertex \('v'\) line"),
    (b"v 0 0 0\nv 1 0 0\nv 0 1 0\n", r"no face \('f'\) line"),
])
def test_empty_or_garbage_obj_is_an_asset_error(tmp_path, content, problem):
    urdf = write_mesh_urdf(tmp_path, content)
    pattern = (r"object\.urdf: <link name='door_link'> <mesh> filename='meshes/door\.obj': mesh file .*door\.obj .*"
               + problem)
    with pytest.raises(AssetError, match=pattern):
        Scene(urdf)


def test_other_mesh_formats_must_not_be_empty(tmp_path):
    from partrm_gym.assets.partnet import validate_urdf

    with pytest.raises(AssetError, match=r"<link name='door_link'> .*door\.stl is empty"):
        Scene(write_mesh_urdf(tmp_path, b"", "door.stl"))
    validate_urdf(write_mesh_urdf(tmp_path, b"solid door\nendsolid door\n", "door.stl"))  # only emptiness checked


def test_shared_mesh_is_read_once(tmp_path, monkeypatch):
    """Real objects reference each mesh from visual and collision: one read per distinct file."""
    from partrm_gym.assets import partnet

    urdf = write_mesh_urdf(tmp_path, CUBE_OBJ.encode())
    calls = []
    real = partnet._mesh_problem
    monkeypatch.setattr(partnet, "_mesh_problem", lambda path: calls.append(path) or real(path))
    partnet.validate_urdf(urdf)
    assert len(calls) == 1 and calls[0].endswith("door.obj")


# -- joints ---------------------------------------------------------------------------------------------


def write_mutated(tmp_path, mutation):
    path = tmp_path / "object.urdf"
    path.write_text(mutation(generate("storage_drawer", 0).urdf()))
    return path


def test_unmutated_procedural_urdf_loads(tmp_path):
    with Scene(write_mutated(tmp_path, lambda u: u)) as scene:
        assert len(scene.joints) == 3


@pytest.mark.parametrize("axis, problem", [
    ("0 0 0", "is the zero vector"),
    ("0 1e-12 -0", "is the zero vector"),
    ("0 1", "must be 3 numbers, got 2"),
    ("1 0 0 0", "must be 3 numbers, got 4"),
])
def test_degenerate_axis_is_an_asset_error(tmp_path, axis, problem):
    path = write_mutated(tmp_path, lambda u: u.replace('<axis xyz="1 0 0"/>', f'<axis xyz="{axis}"/>', 1))
    with pytest.raises(AssetError, match=rf"object\.urdf: <joint name='drawer0_joint'> <axis> .*{problem}"):
        Scene(path)


def test_zero_joint_range_is_an_asset_error(tmp_path):
    path = write_mutated(tmp_path, lambda u: re.sub(r'upper="[^"]*"', 'upper="0"', u, count=1))
    with pytest.raises(AssetError, match=r"object\.urdf: <joint name='drawer0_joint'> <limit> has lower == upper"):
        Scene(path)


# -- real objects -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("object_dir, problem", [
    ("Dishwasher/12414", r"semantics\.txt names movable part\(s\) \['link_1 \(hinge rotation_door\)'\] but "
                         r"mobility\.urdf has no movable joint for them .*'joint_1'> is of type 'fixed'"),
    ("Microwave/7320", r"refers to missing file 'textured_objs/new-5\.obj'"),
    ("Table/32354", r"semantics\.txt names movable part\(s\) .*link_0 \(slider drawer\).* but mobility\.urdf has no "
                    r"movable joint for them .*defined only inside an XML comment"),
])
def test_broken_real_objects_are_refused(partnet_broken_root, object_dir, problem):
    folder = partnet_broken_root / object_dir
    pattern = re.escape(str(folder / "mobility.urdf")) + ": .*" + problem
    with pytest.raises(AssetError, match=pattern):
        load_partnet_folder(folder)
    with pytest.raises(AssetError, match=pattern):
        Scene.from_partnet(folder)


def test_real_object_loads_silently(partnet_root, capfd, caplog):
    """PyBullet prints ~30 'No inertial data' warnings per load on fd 1: none may reach the user's stdout."""
    folder = partnet_root / "StorageFurniture" / "45261"
    capfd.readouterr()
    with caplog.at_level(logging.DEBUG, logger="partrm_gym.scene"), warnings.catch_warnings():
        warnings.simplefilter("error")  # the chatter is no warning either
        with Scene.from_partnet(folder) as scene:
            assert len(scene.joints) == 5 and {j.semantic for j in scene.joints} == {"drawer"}
            assert all(j.type == "prismatic" and j.range > 0 for j in scene.joints)
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert "No inertial data" in caplog.text  # kept for whoever asks for debug logs


# -- native output ----------------------------------------------------------------------------------------


def test_capture_restores_descriptors_when_the_block_raises(capfd):
    with pytest.raises(RuntimeError), captured_native_output() as out:
        os.write(1, b"hidden on stdout\n")
        os.write(2, b"hidden on stderr\n")
        raise RuntimeError("boom")
    assert out.text == "hidden on stdout\nhidden on stderr\n"
    print("visible")
    os.write(1, b"fd visible\n")
    captured = capfd.readouterr()
    assert captured.out == "visible\nfd visible\n" and captured.err == ""


def test_failed_pybullet_load_restores_stdout_and_names_the_error(tmp_path, capfd, monkeypatch):
    """Validation off, so PyBullet itself fails on a missing mesh: its error lines go into the SceneError."""
    monkeypatch.setattr(scene_module, "validate_urdf", lambda *a, **k: [])
    urdf = write_mesh_urdf(tmp_path, CUBE_OBJ.encode())
    (tmp_path / "meshes" / "door.obj").unlink()
    capfd.readouterr()
    with pytest.raises(SceneError, match=r"object\.urdf: PyBullet could not load the URDF \(.*failed to parse link"):
        Scene(urdf)
    print("after the failure")
    captured = capfd.readouterr()
    assert captured.out == "after the failure\n" and captured.err == ""


def test_asset_error_leaves_stdout_working(tmp_path, capfd):
    with pytest.raises(AssetError):
        Scene(write_mesh_urdf(tmp_path, b""))
    print("still here")
    assert capfd.readouterr().out == "still here\n"


PYBULLET_SAMPLE = (
    "b3Warning[examples/Importers/ImportURDFDemo/BulletUrdfImporter.cpp,126]:\n"
    "No inertial data for link, using mass=1, localinertiadiagonal = 1,1,1, identity local inertial frame"
    "b3Warning[examples/Importers/ImportURDFDemo/BulletUrdfImporter.cpp,126]:\nbase"
    "b3Error[examples/Importers/ImportURDFDemo/BulletUrdfImporter.cpp,121]:\nCould not parse visual element"
    "b3Error[examples/Importers/ImportURDFDemo/BulletUrdfImporter.cpp,121]:\nfailed to parse link\n"
    "plain line with an ERROR in it\n"
)


def test_native_errors_become_one_warning_and_chatter_a_debug_log(caplog):
    out = NativeOutput(PYBULLET_SAMPLE)
    assert out.errors() == ["Could not parse visual element", "failed to parse link", "plain line with an ERROR in it"]
    with caplog.at_level(logging.DEBUG, logger="partrm_gym.scene"), pytest.warns(UserWarning) as record:
        scene_module._report_native_output(out, "thing.urdf", "loading")
    assert len(record) == 1
    assert str(record[0].message).startswith("thing.urdf: PyBullet reported errors while loading: Could not parse")
    assert "No inertial data" not in str(record[0].message) and "No inertial data" in caplog.text
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scene_module._report_native_output(NativeOutput(PYBULLET_SAMPLE.split("b3Error")[0]), "x.urdf", "loading")


# -- atomic writes ----------------------------------------------------------------------------------------


@pytest.fixture
def umask():
    """Set the umask for one test and restore the caller's afterwards."""
    saved = os.umask(0o022)
    try:
        yield os.umask
    finally:
        os.umask(saved)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_write_respects_umask(tmp_path, umask, mask, mode):
    umask(mask)
    path = tmp_path / "new.json"
    atomic_write_text(path, "{}")
    assert oct(path.stat().st_mode & 0o777) == oct(mode)


def test_atomic_write_keeps_existing_mode(tmp_path, umask):
    umask(0o022)
    path = tmp_path / "kept.bin"
    path.write_bytes(b"old")
    path.chmod(0o640)
    atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new" and oct(path.stat().st_mode & 0o777) == oct(0o640)
