"""A small PartNet-Mobility-format folder, written by the test, through the same scene API."""

import json

import pytest
from conftest import CUBE_OBJ

from partrm_gym.assets.partnet import AssetError, load_partnet_folder
from partrm_gym.cameras import canonical_rig
from partrm_gym.scene import Scene


def _link(name, scale, xyz):
    return f"""<link name="{name}">
  <visual><origin xyz="{xyz}"/>
    <geometry><mesh filename="textured_objs/cube.obj" scale="{scale}"/></geometry></visual>
  <collision><origin xyz="{xyz}"/>
    <geometry><mesh filename="textured_objs/cube.obj" scale="{scale}"/></geometry></collision>
</link>"""


def make_folder(tmp_path, lower="0", joint_type="revolute", mesh="textured_objs/cube.obj"):
    folder = tmp_path / "100123"
    (folder / "textured_objs").mkdir(parents=True)
    (folder / "textured_objs" / "cube.obj").write_text(CUBE_OBJ)
    urdf = f"""<?xml version="1.0"?>
<robot name="partnet_100123">
  <link name="base"/>
  {_link("link_1", "0.4 0.6 0.8", "0 0 0.4")}
  {_link("link_0", "0.02 0.58 0.78", "0.01 0.29 0")}
  <joint name="joint_1" type="fixed"><parent link="base"/><child link="link_1"/></joint>
  <joint name="joint_0" type="{joint_type}">
    <origin xyz="0.2 -0.29 0.4"/><axis xyz="0 0 -1"/>
    <parent link="link_1"/><child link="link_0"/>
    <limit lower="{lower}" upper="1.57"/>
  </joint>
</robot>
""".replace("textured_objs/cube.obj", mesh, 2 if mesh != "textured_objs/cube.obj" else 0)
    (folder / "mobility.urdf").write_text(urdf)
    (folder / "meta.json").write_text(json.dumps({"model_cat": "StorageFurniture", "anno_id": "100123"}))
    (folder / "semantics.txt").write_text("link_0 hinge rotation_door\nlink_1 static cabinet_body\n")
    return folder


def test_partnet_folder_loads_and_renders(tmp_path):
    folder = make_folder(tmp_path)
    obj = load_partnet_folder(folder)
    assert obj.category == "StorageFurniture" and obj.model_id == "100123"
    assert [(p.joint, p.link, p.semantic) for p in obj.parts] == [("joint_0", "link_0", "rotation_door")]
    with Scene.from_partnet(folder) as scene:
        assert [j.name for j in scene.joints] == ["joint_0"] and scene.joints[0].semantic == "rotation_door"
        scene.set_joint_fractions([1.0])
        frames = scene.render_views(canonical_rig(48))
        assert max(int(f.part_mask(scene.joints[0]).sum()) for f in frames) > 20


@pytest.mark.parametrize("kwargs, message", [
    ({"lower": "abc"}, r"mobility.urdf: <joint name='joint_0'> <limit> lower='abc' is not a number"),
    ({"lower": "nan"}, r"lower='nan' is not finite"),
    ({"joint_type": "fixed"}, r"no movable joint"),
    ({"mesh": "textured_objs/missing.obj"},
     r"<link name='link_1'> <mesh> refers to missing file 'textured_objs/missing.obj'"),
])
def test_malformed_partnet_folders_name_the_problem(tmp_path, kwargs, message):
    folder = make_folder(tmp_path, **kwargs)
    with pytest.raises(AssetError, match=message):
        load_partnet_folder(folder)
    with pytest.raises(AssetError):
        Scene.from_partnet(folder)


def test_not_xml_and_missing_urdf(tmp_path):
    folder = make_folder(tmp_path)
    (folder / "mobility.urdf").write_text("<robot><link name='a'>")
    with pytest.raises(AssetError, match="not well-formed XML"):
        load_partnet_folder(folder)
    (folder / "mobility.urdf").unlink()
    with pytest.raises(AssetError, match="no mobility.urdf"):
        load_partnet_folder(folder)
    with pytest.raises(AssetError, match="not a folder"):
        load_partnet_folder(tmp_path / "nope")


def test_bad_semantics_line(tmp_path):
    folder = make_folder(tmp_path)
    (folder / "semantics.txt").write_text("link_0 hinge\n")
    with pytest.raises(AssetError, match=r"semantics.txt:1"):
        load_partnet_folder(folder)
