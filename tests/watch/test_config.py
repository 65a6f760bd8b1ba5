"""``watch.yaml`` validation: every problem one line naming its key, and `--check`."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from anomaly_api.cli.main import app
from anomaly_api.config import Settings
from anomaly_api.watch.config import (
    WatchConfigError,
    load_watch_config,
    parse_duration,
    parse_watch_config,
)
from anomaly_api.watch.runner import Watcher

GOOD = """
artifacts_dir: {artifacts}
state_dir: {state}
metrics: {{port: 0}}
jobs:
  - name: pumps
    model: {{name: default, alias: production}}
    source:
      prometheus:
        url: http://127.0.0.1:9
        query: sensor_value
        channel_label: sensor
        group_by: [pump]
        step: 15s
        lookback: 1h
    schedule: {{infer_every: 15s}}
  - name: plant
    source:
      mqtt:
        port: 1883
        topics: ["plant/+/readings"]
    sinks:
      metrics: false
      mqtt: {{topic_prefix: anomaly}}
      webhook: {{url: "http://127.0.0.1:9/hook", retries: 2, backoff: 500ms}}
"""


def write(tmp_path: Path, text: str, artifacts: Path | None = None) -> Path:
    path = tmp_path / "watch.yaml"
    path.write_text(text.format(artifacts=artifacts or tmp_path, state=tmp_path / "state"))
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(WatchConfigError) as caught:
        load_watch_config(write(tmp_path, text))
    return caught.value.problems


def test_a_complete_file_is_read_with_durations_in_seconds(tmp_path: Path) -> None:
    config = load_watch_config(write(tmp_path, GOOD))
    prometheus = config.jobs[0].source.prometheus
    assert prometheus is not None
    assert (prometheus.step, prometheus.lookback) == (15.0, 3600.0)
    assert config.jobs[1].sinks.webhook is not None
    assert config.jobs[1].sinks.webhook.backoff == 0.5
    assert config.jobs[1].model.name == "default"


@pytest.mark.parametrize(
    ("value", "seconds"), [("500ms", 0.5), ("15s", 15.0), ("5m", 300.0), ("2h", 7200.0)]
)
def test_durations(value: str, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["15", 15, "15x", "-1s", "0s", "s", ""])
def test_bad_durations_are_refused(value: object) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(value)


def test_unknown_keys_are_refused_one_line_each(tmp_path: Path) -> None:
    text = GOOD.replace("group_by: [pump]", "group_by: [pump]\n        gruop: x").replace(
        "schedule: {{infer_every: 15s}}", "schedule: {{infer_every: 15s, fit_evry: 1h}}"
    )
    assert problems(tmp_path, text) == [
        "jobs[0].source.prometheus.gruop: unknown key",
        "jobs[0].schedule.fit_evry: unknown key",
    ]


def test_a_bad_duration_names_its_key(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD.replace("step: 15s", "step: 15 seconds"))
    assert len(found) == 1
    assert found[0].startswith("jobs[0].source.prometheus.step: '15 seconds' is not a duration")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("        query: sensor_value\n", ""), "jobs[0].source.prometheus: give either query"),
        (
            ("        channel_label: sensor\n", ""),
            "jobs[0].source.prometheus: query needs channel_label",
        ),
        (("name: plant", "name: pumps"), "jobs: job names must be unique: pumps"),
        (("port: 1883", "port: 99999"), "jobs[1].source.mqtt.port: Input should be less"),
        (('topics: ["plant/+/readings"]', "topics: []"), "jobs[1].source.mqtt.topics:"),
    ],
)
def test_each_problem_names_its_key(tmp_path: Path, change: tuple[str, str], expected: str) -> None:
    found = problems(tmp_path, GOOD.replace(*change))
    assert len(found) == 1
    assert found[0].startswith(expected), found


def test_not_yaml_and_not_a_mapping(tmp_path: Path) -> None:
    assert "not YAML" in problems(tmp_path, "jobs: [\n")[0]
    assert problems(tmp_path, "- 1\n") == [
        "(file): Input should be a valid dictionary or instance of WatchConfig"
    ]


def test_no_jobs_is_refused() -> None:
    with pytest.raises(WatchConfigError, match="jobs: Field required"):
        parse_watch_config({})


def test_a_model_that_does_not_exist_names_its_job(
    tmp_path: Path, tiny_artifacts_dir: Path
) -> None:
    text = GOOD.replace("name: default, alias: production", "name: nosuch, alias: production")
    watcher = Watcher(load_watch_config(write(tmp_path, text, tiny_artifacts_dir)), Settings())
    with pytest.raises(WatchConfigError) as caught:
        watcher.check()
    assert caught.value.problems == ["jobs[0].model: unknown model 'nosuch'"]


def test_queries_naming_a_channel_the_model_lacks(tmp_path: Path, tiny_artifacts_dir: Path) -> None:
    text = GOOD.replace(
        "query: sensor_value\n        channel_label: sensor\n",
        "queries: {{f0: a, temp: b}}\n",
    )
    watcher = Watcher(load_watch_config(write(tmp_path, text, tiny_artifacts_dir)), Settings())
    with pytest.raises(WatchConfigError) as caught:
        watcher.check()
    assert caught.value.problems[0].startswith(
        "jobs[0].source.prometheus.queries: model 'default' has no channel temp"
    )


def test_check_command(tmp_path: Path, tiny_artifacts_dir: Path) -> None:
    runner = CliRunner()
    good = write(tmp_path, GOOD, tiny_artifacts_dir)
    result = runner.invoke(app, ["watch", "--config", str(good), "--check"])
    assert result.exit_code == 0, result.output
    assert "2 job(s), every model loads" in result.output
    bad = write(tmp_path, GOOD.replace("step: 15s", "step: 15").replace("fit", "x"))
    result = runner.invoke(app, ["watch", "--config", str(bad), "--check"])
    assert result.exit_code == 2
    assert "error: jobs[0].source.prometheus.step: 15 is not a duration" in result.output


async def test_a_metrics_port_in_use_is_one_line(tmp_path: Path, tiny_artifacts_dir: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        text = GOOD.replace("metrics: {{port: 0}}", f"metrics: {{{{port: {port}}}}}")
        watcher = Watcher(load_watch_config(write(tmp_path, text, tiny_artifacts_dir)), Settings())
        with pytest.raises(WatchConfigError) as caught:
            await watcher.start()
    await watcher.close()
    (problem,) = caught.value.problems
    assert problem.startswith(f"metrics: cannot listen on 127.0.0.1:{port} (")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backfill"], "error: --backfill needs --from and --to"),
        (["--backfill", "--from", "yesterday", "--to", "0"], "error: --from: 'yesterday' is"),
        (["--backfill", "--from", "2026-12-02", "--to", "2026-12-01"], "error: --to must be after"),
    ],
)
def test_backfill_options_are_checked(
    tmp_path: Path, tiny_artifacts_dir: Path, args: list[str], message: str
) -> None:
    good = write(tmp_path, GOOD, tiny_artifacts_dir)
    result = CliRunner().invoke(app, ["watch", "--config", str(good), *args])
    assert result.exit_code == 2
    assert message in result.output


FIT = "    schedule: {{infer_every: 15s}}\n"


@pytest.mark.parametrize(
    ("fit", "expected"),
    [
        ("{every: 1d}", "jobs[0].fit.window: Field required"),
        ("{every: daily, window: 7d}", "jobs[0].fit.every: 'daily' is not a duration"),
        ("{every: 1d, window: 7d, epochs: 3}", "jobs[0].fit.epochs: unknown key"),
        ("{every: 1d, window: 7d, model: Bad/Name}", "jobs[0].fit.model: invalid model name"),
        (
            "{every: 1d, window: 7d, contamination: 0.7}",
            "jobs[0].fit: contamination must be between 0 and 0.5",
        ),
        ("{every: 1d, window: 7d, model_window: 2}", "jobs[0].fit: model_window must be at"),
    ],
)
def test_a_bad_fit_schedule_names_its_key(tmp_path: Path, fit: str, expected: str) -> None:
    found = problems(
        tmp_path, GOOD.replace(FIT, FIT + f"    fit: {fit}\n".replace("{", "{{").replace("}", "}}"))
    )
    assert len(found) == 1
    assert found[0].startswith(expected), found


def test_a_fit_schedule_is_read(tmp_path: Path) -> None:
    text = GOOD.replace(FIT, FIT + "    fit: {{every: 1d, window: 7d, auto_promote: true}}\n")
    fit = load_watch_config(write(tmp_path, text)).jobs[0].fit
    assert fit is not None
    assert (fit.every, fit.window, fit.auto_promote, fit.model) == (86400.0, 604800.0, True, None)
    assert fit.request().window is None
