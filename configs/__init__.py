"""YAML configurations shipped with the package (``partrm_gym.configs``)."""
