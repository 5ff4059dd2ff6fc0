"""PCIe link figures from a fake NVML, the NUMA topology from a fake sysfs, and the bandwidth table."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pytest_cryobench.measure import host_link


def test_parse_cpulist():
    assert host_link.parse_cpulist("0-3,8,10-11\n") == {0, 1, 2, 3, 8, 10, 11}
    assert host_link.parse_cpulist("") == set()


def fake_sysfs(tmp_path, gpu_nodes, node_cpus):
    pci, nodes = tmp_path / "pci", tmp_path / "node"
    for bus, node in gpu_nodes.items():
        (pci / bus).mkdir(parents=True)
        (pci / bus / "numa_node").write_text(f"{node}\n")
    for node, cpus in node_cpus.items():
        (nodes / f"node{node}").mkdir(parents=True)
        (nodes / f"node{node}" / "cpulist").write_text(cpus)
    return pci, nodes


def test_topology_names_each_gpus_node_and_whether_the_threads_run_there(tmp_path, monkeypatch):
    pci, nodes = fake_sysfs(tmp_path, {"0000:1b:00.0": 0, "0000:c2:00.0": 1, "0000:43:00.0": -1},
                            {0: "0-3", 1: "4-7"})
    monkeypatch.setattr(host_link, "thread_cpus", lambda: {0, 1, 2, 3})
    facts = host_link.topology(["00000000:1B:00.0", "00000000:C2:00.0", "00000000:43:00.0", "00000000:99:00.0"],
                               pci, nodes)
    assert facts["nodes"] == {"0": 4, "1": 4} and facts["thread_cpus"] == 4
    assert [(g["numa_node"], g["threads_on_node"]) for g in facts["gpus"]] == [
        (0, "all"), (1, "none"), (None, None), (None, None)]
    monkeypatch.setattr(host_link, "thread_cpus", lambda: {3, 4})
    assert host_link.topology(["00000000:C2:00.0"], pci, nodes)["gpus"][0]["threads_on_node"] == "some"


def test_no_sysfs_is_no_topology(tmp_path):
    assert host_link.numa_nodes(tmp_path / "absent") == {}
    assert host_link.gpu_numa_node("00000000:1B:00.0", tmp_path) is None


def fake_link_nvml(gen=(4, 5), width=(8, 16)):
    return SimpleNamespace(
        nvmlInit=lambda: None, nvmlShutdown=lambda: None,
        nvmlDeviceGetHandleByPciBusId=lambda bus: ("h", bus),
        nvmlDeviceGetCurrPcieLinkGeneration=lambda h: gen[0], nvmlDeviceGetMaxPcieLinkGeneration=lambda h: gen[1],
        nvmlDeviceGetCurrPcieLinkWidth=lambda h: width[0], nvmlDeviceGetMaxPcieLinkWidth=lambda h: width[1])


def test_link_info_and_a_narrow_slot_is_named():
    info = host_link.link_info("00000000:1B:00.0", fake_link_nvml())
    assert info == {"pcie_gen_current": 4, "pcie_gen_max": 5, "pcie_width_current": 8, "pcie_width_max": 16}
    verdict = host_link.link_verdict(info)
    assert "x8 of x16 lanes" in verdict and "Gen4 of Gen5" in verdict
    assert host_link.link_verdict(host_link.link_info("x", fake_link_nvml((5, 5), (16, 16)))) is None


def test_link_info_without_nvml():
    def fail():
        raise OSError("no libnvidia-ml")

    info = host_link.link_info("x", SimpleNamespace(nvmlInit=fail))
    assert info["pcie_error"].startswith("NVML is not usable (OSError")
    assert host_link.link_verdict(info) is None


def test_bandwidth_table_is_bytes_over_seconds():
    def seconds_of(cupy, direction, size, pinned, repeats):
        return size / (25e9 if pinned else 10e9)

    table = host_link.bandwidth_table(None, "h2d", [1 << 20, 1 << 30], seconds_of=seconds_of)
    assert table["pinned"] == {1 << 20: pytest.approx(25.0), 1 << 30: pytest.approx(25.0)}
    assert table["pageable"][1 << 30] == pytest.approx(10.0)


def test_copy_direction_is_checked():
    with pytest.raises(ValueError, match="direction"):
        host_link.copy_seconds(None, "sideways", 1, True)
