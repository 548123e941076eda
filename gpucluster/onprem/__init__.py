"""The bare-metal back end: Ansible inventory for on-prem and hybrid stacks (roles live in ansible/)."""
