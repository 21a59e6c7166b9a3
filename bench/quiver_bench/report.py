"""results.md (tables laid out like the seed's) and results.png (a bar chart) from results."""

from __future__ import annotations

from pathlib import Path

from quiver_bench.machine import machine_line
from quiver_bench.ratios import RATIOS
from quiver_bench.scenarios import PEERS, human_count

PEER_LABELS = {peer.key: peer.label for peer in PEERS}


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Return a Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def scenario_cells(scenario: dict) -> list[str]:
    """Return the scenario, rows and string length cells."""
    return [scenario["label"], human_count(scenario["rows"]), str(scenario["length"])]


def time_cell(result: dict) -> str:
    """Return a peer's median in ms, or why it has none."""
    if "error" in result:
        if result.get("pending"):
            return "…"
        return "skipped" if result.get("skipped") else "failed"
    return f"{result['median_ms']:.0f}"


def ratio_cell(value: float | None) -> str:
    """Return a ratio as "1.15x", or "–" when either side did not run."""
    return "–" if value is None else f"{value:.2f}x"


def times_table(results: dict) -> list[str]:
    """The seed's table: one column per peer (median ms), then the ratio columns."""
    peers = results["config"]["peers"]
    header = ["scenario", "rows", "string length"]
    header += [f"{PEER_LABELS[key]} (ms)" for key in peers]
    header += [ratio.label for ratio in RATIOS]
    rows = []
    for scenario in results["scenarios"]:
        row = scenario_cells(scenario)
        row += [time_cell(scenario["peers"][key]) for key in peers]
        row += [ratio_cell(scenario["ratios"][ratio.key]) for ratio in RATIOS]
        rows.append(row)
    return table(header, rows)


def spread_cell(result: dict) -> str:
    """Return "min–max" of a peer's timed runs in ms."""
    if "error" in result:
        return "–"
    return f"{result['min_ms']:.0f}–{result['max_ms']:.0f}"


def peers_table(results: dict) -> list[str]:
    """One row per peer: start-up time, peak RSS over the whole process, notes or error."""
    header = ["peer", "start-up (ms)", "peak RSS over all scenarios (MiB)", "notes"]
    rows = []
    for key in results["config"]["peers"]:
        startup = results["peers"].get(key, {})
        time_ms = f"{startup['startup_ms']:.0f}" if "startup_ms" in startup else "–"
        notes = "; ".join(startup.get("notes", [])) or startup.get("error", "")
        rows.append([PEER_LABELS[key], time_ms, memory_cell(startup), notes])
    return ["**Peers: start-up (not in the timed runs except quiver's) and memory**", ""] + table(
        header, rows
    )


def memory_cell(result: dict) -> str:
    """Return "total (engine + workers)" peak RSS in MiB."""
    rss = result.get("peak_rss_mb")
    if not rss or not rss.get("total"):
        return "–"
    return f"{rss['total']:.0f} ({rss['engine']:.0f} + {rss['workers']:.0f})"


def detail_table(results: dict, cell, what: str) -> list[str]:
    """One row per scenario, one column per peer, cells from `cell(result)`."""
    peers = results["config"]["peers"]
    header = ["scenario", "rows", "string length"] + [PEER_LABELS[key] for key in peers]
    rows = [
        scenario_cells(scenario) + [cell(scenario["peers"][key]) for key in peers]
        for scenario in results["scenarios"]
    ]
    return [f"**{what}**", ""] + table(header, rows)


def memory_scaling_table(results: dict) -> list[str]:
    """quiver's engine and worker peak RSS on the largest scenario at two scales."""
    scaling = results.get("memory_scaling") or {}
    if not scaling.get("points"):
        note = scaling.get("note", "not measured")
        return ["**quiver peak RSS vs input size**", "", note]
    header = ["scale", "rows", "input file (MiB)", "engine (MiB)", "workers (MiB)"]
    rows = [
        [
            f"{point['scale']:g}",
            human_count(point["rows"]),
            f"{point['file_mib']:.0f}",
            f"{point['engine_mb']:.0f}",
            f"{point['workers_mb']:.0f}",
        ]
        for point in scaling["points"]
    ]
    return [f"**quiver peak RSS vs input size ({scaling['scenario']})**", ""] + table(header, rows)


def failures(results: dict) -> list[str]:
    """List every peer that did not run, with its error."""
    lines = []
    for scenario in results["scenarios"]:
        for key, result in scenario["peers"].items():
            if "error" in result:
                lines.append(f"- {scenario['key']} / {key}: {result['error']}")
    return ["**Peers that did not run**", ""] + lines if lines else []


def rebuilt_warning(config: dict) -> list[str]:
    """Warn when the quiver binary changed during the run (its figures mix two builds)."""
    if not config.get("quiver_binary_rebuilt_during_run"):
        return []
    return ["**Warning:** the quiver binary was rebuilt during this run.", ""]


def write_markdown(results: dict, path: Path) -> None:
    """Write results.md."""
    config = results["config"]
    lines = [
        "# quiver benchmark results",
        "",
        f"Scale {config['scale']:g}; {config['warmups']} warm-ups then {config['runs']} timed "
        f"runs per peer; {config['workers']} worker/thread per peer; median wall time in ms. "
        '"A vs B" = median of B / median of A (above 1: A is faster).',
        "",
        *times_table(results),
        "",
        f"Machine: {machine_line(results['machine'])}",
        "",
        *rebuilt_warning(config),
        *detail_table(results, spread_cell, "min–max of the timed runs (ms)"),
        "",
        *detail_table(results, memory_cell, "peak RSS, MiB: total (engine + workers)"),
        "",
        *peers_table(results),
        "",
        *memory_scaling_table(results),
        "",
        *failures(results),
    ]
    path.write_text("\n".join(lines).rstrip() + "\n")


def write_chart(results: dict, path: Path) -> None:
    """Write results.png: median wall time (min–max bars) and peak RSS per scenario and peer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = results["scenarios"]
    peers = [key for key in results["config"]["peers"] if ran_anywhere(scenarios, key)]
    labels = [f"{s['label']}\n{human_count(s['rows'])} x {s['length']}" for s in scenarios]
    figure, (times_axis, memory_axis) = plt.subplots(2, 1, figsize=(13, 9))
    width = 0.8 / max(1, len(peers))
    for index, key in enumerate(peers):
        offsets = [
            position + (index - (len(peers) - 1) / 2) * width for position in range(len(scenarios))
        ]
        ran = [s["peers"][key] for s in scenarios]
        _time_bars(times_axis, offsets, ran, width, PEER_LABELS[key])
        memory = [
            (r.get("peak_rss_mb") or {}).get("total", 0) if "error" not in r else 0 for r in ran
        ]
        memory_axis.bar(offsets, memory, width, label=PEER_LABELS[key])
    _finish_axis(times_axis, labels, "median wall time (ms), bars: min–max")
    _finish_axis(memory_axis, labels, "peak RSS of the process tree (MiB)")
    times_axis.set_title(f"quiver and peers, scale {results['config']['scale']:g}")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def ran_anywhere(scenarios: list[dict], key: str) -> bool:
    """Tell whether a peer has a time in at least one scenario."""
    return any("error" not in scenario["peers"][key] for scenario in scenarios)


def _time_bars(axis, offsets: list[float], ran: list[dict], width: float, label: str) -> None:
    medians = [r.get("median_ms", 0) if "error" not in r else 0 for r in ran]
    low = [m - r.get("min_ms", m) for m, r in zip(medians, ran, strict=True)]
    high = [r.get("max_ms", m) - m for m, r in zip(medians, ran, strict=True)]
    axis.bar(offsets, medians, width, yerr=[low, high], capsize=2, label=label)


def _finish_axis(axis, labels: list[str], ylabel: str) -> None:
    axis.set_xticks(range(len(labels)))
    axis.set_xticklabels(labels, fontsize=8)
    axis.set_ylabel(ylabel)
    axis.legend(fontsize=8, ncol=3)
    axis.grid(axis="y", alpha=0.3)
