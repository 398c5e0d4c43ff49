"""Draw bench/results/latest.png from latest.json (run by bench/oxbench/report.py with the bench
venv's Python, which has matplotlib). Usage: chart.py latest.json latest.png"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {
    "ox-emb": "#d9480f", "ox-dmn": "#f08c00",
    "mw494-emb": "#1864ab", "mw494-dmn": "#4dabf7",
    "mwnew-emb": "#2b8a3e", "mwnew-dmn": "#8ce99a",
    "granian": "#862e9c", "gunicorn": "#e64980", "gunicorn-nginx": "#f783ac",
}


def bars(ax, data, keys, ratio_kind, metric, title, targets=(), only_for=None):
    """only_for: a variant key; just the scenarios it has figures for."""
    agg = data["aggregate"]["scenarios"]
    scen = [s["key"] for s in data["scenarios"]
            if only_for is None or (agg.get(only_for, {}).get(s["key"]) or {}).get("rps")]
    labels = {v["key"]: v["label"] for v in data["variants"]}
    keys = [k for k in keys if k in agg]
    width = 0.8 / max(1, len(keys))
    ymax = 1.2
    for i, k in enumerate(keys):
        xs, ys, nas = [], [], []
        for j, s in enumerate(scen):
            e = agg[k].get(s)
            r = (e or {}).get(ratio_kind, {}).get(metric) if e else None
            x = j - 0.4 + width * (i + 0.5)
            if r is None:
                nas.append(x)
            else:
                xs.append(x)
                ys.append(r)
                ymax = max(ymax, r)
        ax.bar(xs, ys, width, label=labels[k], color=COLORS.get(k, "#868e96"))
        for x, y in zip(xs, ys):
            ax.text(x, y, f"{y:.2f}", ha="center", va="bottom", fontsize=6, rotation=90)
        for x in nas:
            ax.text(x, 0.02, "n/a", ha="center", va="bottom", fontsize=6, rotation=90, color="#555")
    ax.axhline(1.0, color="black", linewidth=0.8)
    for y, style in targets:
        ax.axhline(y, color="#c92a2a", linewidth=0.7, linestyle=style)
    ax.set_xticks(range(len(scen)))
    ax.set_xticklabels(scen)
    ax.set_ylim(0, ymax * 1.3)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, ncol=6, loc="upper center")
    ax.grid(axis="y", alpha=0.3)


def main():
    data = json.load(open(sys.argv[1]))
    m = data["machine"]
    fig, axes = plt.subplots(4, 1, figsize=(12, 17))
    bars(axes[0], data, ["ox-emb", "ox-dmn", "mwnew-emb", "mwnew-dmn"], "ratio_mw494", "rps",
         "req/s ÷ mod_wsgi 4.9.4 in the same mode (higher is better; red dashes: 1.5× / 1.6× daemon targets)",
         targets=[(1.5, "--"), (1.6, ":")])
    bars(axes[1], data, ["ox-emb", "ox-dmn", "mw494-emb", "mw494-dmn", "mwnew-emb", "mwnew-dmn"],
         "ratio_static", "rps",
         "req/s ÷ Apache serving the static counterpart (higher is better; red: 0.9 / 0.95 targets)",
         targets=[(0.9, "--"), (0.95, ":")])
    bars(axes[2], data, ["ox-emb", "ox-dmn", "mwnew-emb", "mwnew-dmn"], "ratio_mw494", "p99_ms",
         "p99 latency ÷ mod_wsgi 4.9.4 in the same mode (lower is better)")
    bars(axes[3], data,
         ["ox-emb", "ox-dmn", "mw494-emb", "mw494-dmn", "gunicorn", "gunicorn-nginx"],
         "ratio_granian", "rps",
         "req/s ÷ Granian, same scenario (higher is better; red: 1.0 / 0.9 Django view targets)",
         targets=[(0.9, "--")], only_for="granian")
    cfg = data["config"]
    fig.suptitle(
        f"oxwsgi benchmark {m['date']} — {m['nproc']}× {m['cpu']}, {m['apache']}, {m['python']}, "
        f"commit {m['git_commit']}\n{cfg['rounds']} round(s) × {cfg['duration']} s, medians"
        + (" — QUICK smoke run, noisy" if cfg["quick"] else ""), fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.savefig(sys.argv[2], dpi=90)


if __name__ == "__main__":
    main()
