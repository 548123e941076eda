#!/usr/bin/python
"""Ansible module: set keys in a TOML file in place, keeping every other table, key, comment and order."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: toml_settings
short_description: Merge settings into a TOML file without rewriting the rest of it
description:
  - Sets each key of I(settings) at its table path, creating missing tables; everything else in the file
    (other tables such as foreign container runtimes, comments, key order) stays as it was.
  - Used for containerd's config.toml (an imported drop-in would replace containerd 1.x's whole CRI plugin
    table), the NVIDIA container toolkit's config.toml and similar files owned by packages.
  - Runs with the target's Python and needs the tomlkit library there (Debian/Ubuntu python3-tomlkit).
options:
  path:
    description: The TOML file; created when missing.
    type: path
    required: true
  settings:
    description: >-
      List of settings, each with C(table) (list of table names from the top, e.g.
      [plugins, io.containerd.grpc.v1.cri]) and C(values) (key -> value set in that table).
    type: list
    elements: dict
    required: true
  mode:
    description: File mode when the file is created.
    type: str
    default: "0644"
author: gpucluster
"""

EXAMPLES = r"""
- name: Add the nvidia runtime to containerd
  toml_settings:
    path: /etc/containerd/config.toml
    settings:
      - table: [plugins, io.containerd.grpc.v1.cri, containerd, runtimes, nvidia, options]
        values: {BinaryName: /usr/bin/nvidia-container-runtime, SystemdCgroup: true}
"""

RETURN = r"""
changed_keys:
  description: Dotted paths of the keys whose value changed.
  returned: always
  type: list
  elements: str
"""

import os
import tempfile

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    import tomlkit

    TOMLKIT_ERROR = None
except ImportError as error:  # reported through fail_json below
    TOMLKIT_ERROR = error


def _table(document, names):
    node = document
    for name in names:
        if name not in node:
            node[name] = tomlkit.table(is_super_table=name != names[-1])
        node = node[name]
        if not isinstance(node, dict):
            raise ValueError(f"{'.'.join(names)}: {name} is a value, not a table")
    return node


def merge(text, settings):
    """Return (new text, changed dotted keys)."""
    document = tomlkit.parse(text)
    changed = []
    for setting in settings:
        table = _table(document, list(setting["table"]))
        for key, value in setting["values"].items():
            current = table.get(key)
            if current is None or _plain(current) != value:
                table[key] = value
                changed.append(".".join([*setting["table"], key]))
    return tomlkit.dumps(document), changed


def _plain(value):
    return value.unwrap() if hasattr(value, "unwrap") else value


def main():
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "settings": {"type": "list", "elements": "dict", "required": True},
            "mode": {"type": "str", "default": "0644"},
        },
        supports_check_mode=True,
    )
    if TOMLKIT_ERROR is not None:
        module.fail_json(msg=missing_required_lib("tomlkit (python3-tomlkit)"), exception=str(TOMLKIT_ERROR))
    path = module.params["path"]
    before = ""
    if os.path.exists(path):
        with open(path, encoding="utf-8") as stream:
            before = stream.read()
    try:
        after, changed = merge(before, module.params["settings"])
    except (ValueError, tomlkit.exceptions.TOMLKitError) as error:
        module.fail_json(msg=f"{path}: {error}")
    if not changed:  # keep the file byte for byte: re-serializing may move whitespace
        after = before
    result = {"changed": after != before, "changed_keys": changed, "path": path}
    if module._diff:
        result["diff"] = {"before": before, "after": after, "before_header": path, "after_header": path}
    if result["changed"] and not module.check_mode:
        directory = os.path.dirname(path) or "."
        fd, staging = tempfile.mkstemp(prefix=".toml_settings.", dir=directory)
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(after)
        mode = int(module.params["mode"], 8)
        os.chmod(staging, os.stat(path).st_mode & 0o7777 if os.path.exists(path) else mode)
        module.atomic_move(staging, path)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
