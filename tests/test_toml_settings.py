"""The toml_settings Ansible module's merge, with the tomlkit version Debian 12 ships on the targets."""

from __future__ import annotations

import importlib.util
import tomllib

import pytest

from stacks import ROOT

spec = importlib.util.spec_from_file_location("toml_settings", ROOT / "ansible" / "library" / "toml_settings.py")
assert spec and spec.loader
toml_settings = importlib.util.module_from_spec(spec)
spec.loader.exec_module(toml_settings)

# /etc/containerd/config.toml as Debian 12's containerd package installs it.
DEBIAN_CONTAINERD = """version = 2

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "/etc/cni/net.d"
  [plugins."io.containerd.internal.v1.opt"]
    path = "/var/lib/containerd/opt"
"""
CRI = ["plugins", "io.containerd.grpc.v1.cri", "containerd"]
SETTINGS = [
    {"table": [], "values": {"version": 2}},
    {"table": [*CRI, "runtimes", "nvidia"], "values": {"runtime_type": "io.containerd.runc.v2"}},
    {"table": [*CRI, "runtimes", "nvidia", "options"], "values": {"BinaryName": "/usr/bin/nvidia-container-runtime"}},
    {"table": [*CRI, "runtimes", "runc", "options"], "values": {"SystemdCgroup": True}},
    {"table": CRI, "values": {"default_runtime_name": "nvidia"}},
]


def test_merge_adds_settings_keeps_the_rest_and_is_stable():
    merged, changed = toml_settings.merge(DEBIAN_CONTAINERD, SETTINGS)
    assert changed == [
        "plugins.io.containerd.grpc.v1.cri.containerd.runtimes.nvidia.runtime_type",
        "plugins.io.containerd.grpc.v1.cri.containerd.runtimes.nvidia.options.BinaryName",
        "plugins.io.containerd.grpc.v1.cri.containerd.runtimes.runc.options.SystemdCgroup",
        "plugins.io.containerd.grpc.v1.cri.containerd.default_runtime_name",
    ]
    config = tomllib.loads(merged)
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["cni"] == {"bin_dir": "/usr/lib/cni", "conf_dir": "/etc/cni/net.d"}
    assert cri["containerd"]["runtimes"]["nvidia"]["options"]["BinaryName"] == "/usr/bin/nvidia-container-runtime"
    assert config["plugins"]["io.containerd.internal.v1.opt"]["path"] == "/var/lib/containerd/opt"
    assert toml_settings.merge(merged, SETTINGS)[1] == []  # nothing left to change: the module reports ok


def test_merge_changes_only_differing_values():
    merged, _ = toml_settings.merge(DEBIAN_CONTAINERD, SETTINGS)
    changed = toml_settings.merge(merged, [{"table": CRI, "values": {"default_runtime_name": "runc"}}])[1]
    assert changed == ["plugins.io.containerd.grpc.v1.cri.containerd.default_runtime_name"]


def test_a_value_where_a_table_is_needed_is_an_error():
    with pytest.raises(ValueError, match="version is a value, not a table"):
        toml_settings.merge(DEBIAN_CONTAINERD, [{"table": ["version", "x"], "values": {"a": 1}}])
