"""World-model environments, their PyBullet twins, wrappers and the comparison tool."""
