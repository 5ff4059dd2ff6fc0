"""Which GPU a case runs on: NVML's list in CUDA's numbering under CUDA_VISIBLE_DEVICES and
CUDA_DEVICE_ORDER, the bus-id match with CuPy's list, and CuPy's list alone without NVML."""

from __future__ import annotations

import pytest

from pytest_cryobench.measure.backend import plan_backend
from pytest_cryobench.measure.gpus import (
    GpuInventory,
    apply_visible,
    cuda_order,
    normalize_bus_id,
    query_gpus,
    resolve_with_cupy,
    select_gpus,
)
from tests.measure.fakes import MACHINE, cuda_view, fake_cupy, fake_nvml


def names_and_buses(inventory):
    return [(g.index, g.bus_id) for g in inventory.gpus]


def query(env):
    nvml, _ = fake_nvml()
    return query_gpus(nvml, environ=env)


# MACHINE in NVML order: 0 A100 @1B, 1 H100 @43, 2 A100 @89, 3 H100 @C2
A100_1B, H100_43, A100_89, H100_C2 = (g[1] for g in MACHINE)


def test_bus_ids_compare_in_any_form():
    assert normalize_bus_id("0000:1b:00.0") == normalize_bus_id("00000000:1B:00.0") == "00000000:1B:00.0"
    assert normalize_bus_id(b"1b:00.0") == "00000000:1B:00.0"
    assert normalize_bus_id("0001:C2:00.0") != normalize_bus_id("0000:C2:00.0")


def test_default_order_is_fastest_first_then_bus_id():
    inv = query({})
    assert names_and_buses(inv) == [(0, H100_43), (1, H100_C2), (2, A100_1B), (3, A100_89)]
    assert [g.nvml_index for g in inv.gpus] == [1, 3, 0, 2]
    assert inv.note is None and len(inv.machine_gpus) == 4


def test_pci_bus_id_order():
    inv = query({"CUDA_DEVICE_ORDER": "PCI_BUS_ID"})
    assert names_and_buses(inv) == [(0, A100_1B), (1, H100_43), (2, A100_89), (3, H100_C2)]
    assert [g.nvml_index for g in inv.gpus] == [0, 1, 2, 3]


def test_visible_indices_count_in_cuda_order_and_are_renumbered():
    # SLURM gives GPUs 2,3 of the PCI order: the process sees them as 0 and 1
    inv = query({"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": "2,3"})
    assert names_and_buses(inv) == [(0, A100_89), (1, H100_C2)]
    # the same variable under the default order selects other cards
    inv = query({"CUDA_VISIBLE_DEVICES": "2,3"})
    assert names_and_buses(inv) == [(0, A100_1B), (1, A100_89)]


def test_visible_order_as_listed():
    inv = query({"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": "3,0"})
    assert names_and_buses(inv) == [(0, H100_C2), (1, A100_1B)]


def test_visible_uuid_forms_and_prefixes():
    inv = query({"CUDA_VISIBLE_DEVICES": "GPU-cccc3333-0000,GPU-aaaa"})
    assert names_and_buses(inv) == [(0, A100_89), (1, A100_1B)]
    assert [g.uuid for g in inv.gpus] == ["GPU-cccc3333-0000", "GPU-aaaa1111-0000"]


def test_an_invalid_entry_hides_the_rest_as_cuda_does():
    inv = query({"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": "1,7,2"})
    assert names_and_buses(inv) == [(0, H100_43)]
    assert "'7' names no GPU" in inv.note
    assert query({"CUDA_VISIBLE_DEVICES": "-1"}).gpus == ()
    assert query({"CUDA_VISIBLE_DEVICES": ""}).gpus == ()
    assert query({"CUDA_VISIBLE_DEVICES": "GPU-ffff"}).gpus == ()


def test_an_ambiguous_uuid_prefix_names_no_gpu():
    ordered = cuda_order(query({}).machine_gpus, "PCI_BUS_ID")
    visible, note = apply_visible(ordered, "GPU-")
    assert visible == [] and "names no GPU" in note


def test_mig_instances_wait_for_cupy():
    inv = query({"CUDA_VISIBLE_DEVICES": "MIG-1234-abcd"})
    assert inv.gpus == ()
    assert "MIG instance" in inv.note


def test_select_uses_cuda_ordinals():
    inv = query({"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": "2,3"})
    assert [g.bus_id for g in select_gpus(inv, (1,))] == [H100_C2]
    with pytest.raises(ValueError, match=r"no GPU with index \[2\]; present: \[0, 1\]"):
        select_gpus(inv, (2,))


# --------------------------------------------------------------------------- CuPy's numbering

def test_cupy_bus_ids_decide_which_card_each_ordinal_is():
    inv = query({"CUDA_VISIBLE_DEVICES": "0,1"})  # predicted: the two H100s
    # CUDA actually put an A100 first (its heuristic is not NVML's compute capability)
    cupy = fake_cupy(cuda_view(order=[0, 1]))
    resolved = resolve_with_cupy(inv, cupy)
    assert names_and_buses(resolved) == [(0, A100_1B), (1, H100_43)]
    assert [g.nvml_index for g in resolved.gpus] == [0, 1]
    assert [g.uuid for g in resolved.gpus] == ["GPU-aaaa1111-0000", "GPU-bbbb2222-0000"]
    assert all(g.source == "nvml" for g in resolved.gpus)
    assert "otherwise than predicted" in resolved.note


def test_cupy_agreeing_with_the_prediction_leaves_no_note():
    inv = query({"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": "2,3"})
    resolved = resolve_with_cupy(inv, fake_cupy(cuda_view(order=[2, 3])))
    assert names_and_buses(resolved) == names_and_buses(inv) and resolved.note is None


def test_without_nvml_the_devices_come_from_cupy_and_the_record_says_so():
    inv = GpuInventory((), error="NVML is not usable (ModuleNotFoundError: No module named 'pynvml')")
    cupy = fake_cupy(cuda_view(order=[3]))
    plan = plan_backend("cupy", "all", inv, cupy_probe=lambda: (cupy, None), device_probe=lambda c, d: None)
    assert plan.backend == "cupy" and plan.labels == ["gpu0"]
    (gpu,) = plan.devices
    assert (gpu.name, gpu.memory_total, gpu.compute_capability, gpu.source) == (
        "NVIDIA H100 80GB HBM3", 85_520_809_984, (9, 0), "cupy")
    assert gpu.uuid is None and gpu.nvml_index is None
    assert plan.inventory.note.startswith("device list from CuPy: NVML is not usable")
    assert "no driver version" in plan.inventory.note


def test_mig_instances_keep_cupys_memory():
    inv = query({"CUDA_VISIBLE_DEVICES": "MIG-1,MIG-2"})
    slice_ = ("NVIDIA H100 80GB HBM3 MIG 1g.10gb", MACHINE[1][1][4:], 10 << 30, (9, 0))
    resolved = resolve_with_cupy(inv, fake_cupy([slice_, slice_]))
    assert [(g.index, g.memory_total, g.source) for g in resolved.gpus] == [(0, 10 << 30, "cupy"), (1, 10 << 30, "cupy")]


def test_plan_selects_in_cupys_numbering_and_probes_the_selection():
    inv = query({"CUDA_DEVICE_ORDER": "PCI_BUS_ID"})
    cupy = fake_cupy(cuda_view(order=[1, 3, 0, 2]))  # CUDA's own fastest-first
    probed = []
    plan = plan_backend("auto", (1, 2), inv, cupy_probe=lambda: (cupy, None),
                        device_probe=lambda c, devices: probed.extend(devices))
    assert [(g.index, g.bus_id) for g in plan.devices] == [(1, H100_C2), (2, A100_1B)]
    assert plan.labels == ["gpu1", "gpu2"]
    assert probed == list(plan.devices)


def test_a_failed_probe_skips_with_its_reason():
    inv = query({})
    cupy = fake_cupy(cuda_view())
    plan = plan_backend("cupy", "all", inv, cupy_probe=lambda: (cupy, None),
                        device_probe=lambda c, d: "CuPy cannot use cuFFT on gpu0")
    assert plan.backend is None and plan.skip_reason.startswith("CuPy cannot use cuFFT on gpu0")
    assert "--cryobench-backend numpy" in plan.skip_reason


def test_collection_labels_follow_cupy_when_nvml_is_not_usable():
    from types import SimpleNamespace

    from pytest_cryobench.plugin.collection import _gpu_labels

    cupy = fake_cupy(cuda_view(order=[1, 3]))
    inv = GpuInventory((), error="NVML is not usable (no driver)")
    plan = plan_backend("cupy", "all", inv, cupy_probe=lambda: (cupy, None), device_probe=lambda c, d: None)
    state = SimpleNamespace(inventory=inv, settings=SimpleNamespace(gpus="all", backend="cupy"), backend_plan=plan)
    assert _gpu_labels(state) == ["gpu0", "gpu1"]
    state.settings.backend = "auto"  # without an explicit request, collection does not import CuPy
    assert _gpu_labels(state) == ["gpu"]
