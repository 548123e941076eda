"""Pulumi entry point (Pulumi.yaml ``main: gpucluster/program/``): ``pulumi up`` runs this per stack."""

from gpucluster.program.stack import run

run()
