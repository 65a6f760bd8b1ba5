"""The ``anomaly-api`` command. Each sub-command lives in its own module.

Commands import their heavy dependencies inside the function, so ``--help`` is instant.
"""

from __future__ import annotations

import typer

from anomaly_api.cli import (
    evaluate,
    generate,
    models,
    score,
    serve,
    train,
    train_fleet,
    tune,
    watch,
)

app = typer.Typer(
    name="anomaly-api",
    help="Anomaly detection for multivariate sensor readings: generate, train, evaluate, serve, "
    "score files.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command("generate")(generate.generate)
app.command("train")(train.train)
app.command("train-fleet")(train_fleet.train_fleet)
app.command("evaluate")(evaluate.evaluate)
app.command("tune")(tune.tune)
app.command("models")(models.models)
app.command("serve")(serve.serve)
app.command("score")(score.score)
app.command("watch")(watch.watch)

if __name__ == "__main__":  # pragma: no cover
    app()
