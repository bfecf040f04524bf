# %% [markdown]
# # A small simulated evaluation, from Python
#
# Run it as a script (`python docs/examples/notebook_example.py` from the repository root), or
# paste the cells into Jupyter. In a notebook, the event loop is already running: write
# `report = await ua.run(...)` instead of `report = ua.run(...)`.

# %%
from pathlib import Path

import ultra_async as ua
from ultra_async.report.tables import render_report, write_plot

OUT = Path("results/notebook")

# %% the evaluation: three models, two prompt types, every task type, two instances per cell
report = ua.run(
    models="gpt-4o-mini,DeepSeek-V3-0324,qwen2.5-7b-instruct",
    prompt_types="optimal,baseline",
    instances=2,
    simulate=True,  # the embedded simulator: no API keys needed
    seed=1,
    out=OUT,
    fresh=True,
)
print(f"{report.summary.completed} tests, {report.summary.infra_errors} infra errors")
for shard in report.summary.shards:
    print(f"  {shard['model']:<22} {shard['shard']:<20} {shard['done']} tests")

# %% the results: a table, a DataFrame, a picture
results = ua.load(OUT)
print(render_report(results.data, fmt="markdown"))

try:
    frame = results.to_dataframe()  # one row per leaf
    print(frame.groupby(["model", "prompt_type"])["success_rate"].mean())
except ImportError:
    print("install the analysis extra for DataFrames: pip install 'ultra_async[analysis]'")

try:
    write_plot(results.data, OUT / "report.png")
    print(f"plot written to {OUT / 'report.png'}")
except ImportError:
    print("install the analysis extra for plots: pip install 'ultra_async[analysis]'")
