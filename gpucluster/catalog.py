"""The built-in hardware catalog: GPU models, AWS GPU instance types and a few CPU types for system nodes.

The data lives in ``data/catalog.yaml`` (sources and date at its top); this module gives it types.
It is loaded once, on first use.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MigProfile(_Frozen):
    compute: int = Field(description="GPU compute slices (GPCs) the instance takes.")
    memory: int = Field(description="Memory slices the instance takes.")
    max_instances: int = Field(description="Most instances of this profile on one GPU.")


class MigCapability(_Frozen):
    compute_slices: int
    memory_slices: int
    profiles: dict[str, MigProfile]


class GpuModel(_Frozen):
    name: str
    product_name: str = Field(description="What nvidia-smi and the nvidia.com/gpu.product label report.")
    architecture: Literal["volta", "turing", "ampere", "ada", "hopper", "blackwell"]
    memory_gib: int
    mig: MigCapability | None = None


class InstanceType(_Frozen):
    gpu: str
    gpus: int
    vcpus: int
    memory_gib: float
    gpu_memory_gib: float
    efa_interfaces: int
    efa_device_rdma: bool = Field(False, description="EFA can read/write GPU memory directly (p4d, p5).")
    on_demand_usd_per_hour: float


class CpuInstanceType(_Frozen):
    vcpus: int
    memory_gib: float
    on_demand_usd_per_hour: float


class Catalog(_Frozen):
    source: str
    as_of: str
    gpus: dict[str, GpuModel]
    instance_types: dict[str, InstanceType]
    cpu_instance_types: dict[str, CpuInstanceType] = Field(description="CPU types for the system pool.")


@cache
def catalog() -> Catalog:
    text = resources.files("gpucluster").joinpath("data/catalog.yaml").read_text(encoding="utf-8")
    return Catalog.model_validate(yaml.safe_load(text))
