"""Discovery jobs (``/v1/discoveries``): refusals before any work, a job run to its end by a real
``segments discover --job`` subprocess, cancellation, and what a restart does to a running job.
The app is served in process over a small generated company; jobs use ``discover --quick``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from service_support import InProcessService
from ui_support import InProcessSource, train_home

from feature_store.cohort import Cohort
from feature_store.discovery import DiscoveryRequest
from feature_store.ingest import ingest_files
from feature_store.jobs import INTERRUPTED, DiscoveryJobs
from feature_store.layout import StoreLayout
from feature_store.timeutil import parse_as_of
from models.summaries import churned_line
from pipelines.cli.discover import _print_discovery
from pipelines.discover import discover
from pipelines.feature_pipeline import build_features
from service.app import create_app
from service.settings import Settings

KEYS = {"discover-key": ["read", "discover"], "read-key": ["read"]}
AS_OF = "2026-06-30"
JOB_SECONDS = 600  # a bound for a failure only: a busy machine registers slowly


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    home = tmp_path_factory.mktemp("discoveries") / "home"
    trained = train_home(home, customers=120, segments=3)
    attributes = home / "customers.csv"
    ids = trained.customer_ids
    attributes.write_text(
        "customer_id,country\n"
        + "".join(f"{c},{'DE' if i % 2 else 'FR'}\n" for i, c in enumerate(ids))
    )
    ingest_files(StoreLayout(home), {}, customers=attributes)
    return trained


def service(trained) -> InProcessService:
    settings = Settings(
        home=trained.home, api_keys=KEYS, poll_interval_seconds=3600, discovery_quick=True
    )
    return InProcessService(create_app(settings, source=InProcessSource(trained.model)))


@pytest.fixture
def api(trained):
    with service(trained) as api:
        yield api


def post(api, body: dict, key: str = "discover-key"):
    # JSON's non-standard Infinity, which Python's parser takes, spelt as a client could send it
    text = json.dumps(body).replace('"Infinity"', "Infinity")
    headers = {"Content-Type": "application/json"}
    return api.post("/v1/discoveries", key=key, content=text, headers=headers)


def wait_until(api, job_id: str, done, seconds: float = JOB_SECONDS) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        job = api.get(f"/v1/discoveries/{job_id}", key="discover-key").json()
        if done(job):
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} still {job['status']} at step {job['step']}: {job}")


def finished(job: dict) -> bool:
    return job["status"] in ("succeeded", "failed", "cancelled")


@pytest.mark.parametrize(
    ("body", "status", "code", "words"),
    [
        ({"as_of": AS_OF, "filters": {"shoe_size": ["42"]}}, 422, "unknown_filter", "country"),
        ({"as_of": "2019-01-01"}, 422, "as_of_outside_data", "first accepted event"),
        ({"as_of": "2031-01-01"}, 422, "as_of_outside_data", "after the last"),
        ({"as_of": AS_OF, "filters": {"plan": ["no-such-plan"]}}, 422, "empty_selection", "0 "),
        # values are exact; the one a customer holds in another case is named
        ({"as_of": AS_OF, "filters": {"plan": ["Team"]}}, 422, "empty_selection", "'team'"),
        ({"as_of": AS_OF, "mrr_min": 10**9}, 422, "empty_selection", "MRR"),
        ({"as_of": AS_OF, "max_segments": 1}, 422, "validation_error", "max_segments"),
        ({"as_of": AS_OF, "segments": 1}, 422, "validation_error", "segments"),
        ({"as_of": AS_OF, "segments": 31}, 422, "validation_error", "segments"),
        (
            {"as_of": AS_OF, "filters": {"country": ["DE"]}, "mrr_min": 2000, "segments": 30},
            422,
            "empty_selection",
            "needs at least 60",
        ),
        ({"as_of": AS_OF, "families": ["astrology"]}, 422, "validation_error", "families"),
        # refused, not dropped: the job once ran on every customer and the answer was a 500
        # (no JSON value: refused as the body's, since 2026-12-07)
        ({"as_of": AS_OF, "mrr_max": "Infinity"}, 422, "validation_error", "Infinity is no JSON"),
        ({"as_of": AS_OF, "max_segments": "3"}, 422, "validation_error", "max_segments"),
        ({"as_of": AS_OF, "history_days": True}, 422, "validation_error", "history_days"),
        ({"as_of": AS_OF, "max_segments": 2.5}, 422, "validation_error", "max_segments"),
        ({"as_of": AS_OF, "families": ["value", "value"]}, 422, "validation_error", "families"),
        ({"as_of": "last tuesday"}, 422, "invalid_as_of", "last tuesday"),
        # no accepted value selects nobody: said of the field, before the features are built
        ({"as_of": AS_OF, "filters": {"plan": []}}, 422, "validation_error", "filters.plan"),
    ],
)
def test_a_bad_request_is_a_problem_before_any_work(api, body, status, code, words):
    before = api.get("/v1/discoveries", key="discover-key").json()["discoveries"]
    response = post(api, body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == code
    assert words in problem["detail"]
    assert api.get("/v1/discoveries", key="discover-key").json()["discoveries"] == before


def test_a_whole_number_written_with_a_point_is_that_number():
    """JSON Schema counts 8.0 an integer, as the scoring routes do; strict refused it."""
    from service.schemas.discoveries import DiscoveryBody

    body = DiscoveryBody.model_validate(
        {"as_of": AS_OF, "max_segments": 8.0, "segments": 3.0, "history_days": 90.0}
    )
    assert (body.max_segments, body.segments, body.history_days) == (8, 3, 90)
    assert isinstance(body.max_segments, int)


def test_discovery_needs_the_discover_scope(api):
    assert post(api, {"as_of": AS_OF}, key="read-key").status_code == 403
    assert api.get("/v1/discoveries", key="read-key").status_code == 403
    assert api.get("/v1/discoveries/nope", key="discover-key").status_code == 404


def test_a_job_told_the_number_of_segments_makes_that_many(api):
    response = post(api, {"as_of": AS_OF, "segments": 3})
    assert response.status_code == 202, response.text
    done = wait_until(api, response.json()["id"], finished)
    assert done["status"] == "succeeded", done
    assert done["request"]["segments"] == 3
    assert done["result"]["n_segments"] == 3
    assert len(done["result"]["segments"]) == 3


def test_a_job_runs_to_a_registered_challenger(api, trained):
    body = {"as_of": AS_OF, "filters": {"country": ["DE"]}, "max_segments": 4}
    response = post(api, body)
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == f"/v1/discoveries/{job['id']}"
    assert job["status"] in ("queued", "running")
    done = wait_until(api, job["id"], finished)
    assert done["status"] == "succeeded", done
    assert [s["state"] for s in done["progress"]] == ["done"] * 4
    assert [s["step"] for s in done["progress"]] == [
        "features",
        "candidates",
        "explainer",
        "registration",
    ]
    result = done["result"]
    assert result["alias"] == "challenger"
    assert result["champion_version"] is None  # never promoted, even with no champion
    assert result["customers"] <= len(trained.customer_ids) // 2 + 1
    assert 2 <= result["n_segments"] <= 4
    assert sum(s["size"] for s in result["segments"]) <= result["customers"]
    assert "country in DE" in result["selection"]
    assert result["run_id"]
    # what sets each segment apart, in the features' units, as the segment pages say it
    for segment in result["segments"]:
        assert 1 <= len(segment["sets_apart"]) <= 3, segment
        assert all(" vs " in line for line in segment["sets_apart"]), segment
    listed = api.get("/v1/discoveries", key="discover-key").json()["discoveries"]
    assert listed[0]["id"] == job["id"]


def test_a_discovery_backtests_whom_its_filters_selected_at_the_window_start(trained, capsys):
    """Selected as of the discovery's date, every customer is still active: the churn of its
    segments would be 0% by construction. The cohort is whom the filters selected 90 days
    before, whatever became of them."""
    layout = StoreLayout(trained.home)
    as_of = parse_as_of(AS_OF)
    request = DiscoveryRequest(as_of, Cohort(filters={"country": ("DE",)}), segments=2)
    result = discover(layout, request, quick=True)
    then = build_features(layout, as_of - timedelta(days=90))
    now = build_features(layout, as_of).set_index("customer_id")
    germans = {c for i, c in enumerate(trained.customer_ids) if i % 2}
    selected = then["customer_id"].isin(germans) & (then["is_canceled"] == 0)
    paying = then[selected & (then["mrr"] > 0)]
    left = now.loc[paying["customer_id"], "is_canceled"] == 1
    assert left.sum() > 0  # the generated company has churners
    assert result.metrics["backtest_cohort"] == len(paying)
    assert result.metrics["backtest_churn_rate"] == pytest.approx(left.mean())
    assert result.churned["count"] == left.sum()  # of those selected then; none of today's
    assert sum(s["backtest"]["cohort"] for s in result.segments) == len(paying)
    churn = [s["backtest"]["churn"] for s in result.segments]
    assert sum(c["count"] for c in churn if c is not None) <= left.sum()
    _print_discovery(result)  # what `segments discover` prints: the window named, churn beside
    printed = " ".join(capsys.readouterr().out.split())
    assert "90-day" in printed  # the table names its window (wrapped in a narrow terminal)
    assert (
        f"{left.sum()} of the customers selected (country in DE) 90 days before cancelled since"
        in printed
    )
    # the page and the report say whom the count is of too
    model = registry_model(trained, result.model_version)
    line = churned_line(model)
    assert "of the customers selected (country in DE) 90 days before the features' date" in line
    # nothing is said about those who cancelled before the window: not measured
    assert result.churned["before_window"] is None
    assert "cancelled earlier" not in printed


def test_a_discovered_challenger_is_compared_and_can_be_promoted(tmp_path):
    """What the result advises ("promote it") works: the version keeps its training sample and
    public ids traced against the champion, and is compared with it at once."""
    from models.comparison import COMPARE_FOLDER, COMPARISON_FILE
    from models.registry import CHAMPION, ModelRegistry
    from pipelines.lifecycle import promote_by_hand
    from pipelines.tracking import registry_config

    home = train_home(tmp_path / "home", customers=120, segments=3)
    layout = StoreLayout(home.home)
    registry = ModelRegistry(registry_config(layout))
    as_of = parse_as_of(AS_OF)
    first = discover(layout, DiscoveryRequest(as_of, segments=2), registry, quick=True)
    promote_by_hand(registry, first.model_version, "test", force=True, reason="a first champion")
    second = discover(
        layout, DiscoveryRequest(as_of, Cohort(filters={"interval": ("month",)}), segments=3),
        registry, quick=True,
    )  # fmt: skip
    assert second.champion_version == first.model_version
    found = registry.download_run_file(
        second.model_version, f"{COMPARE_FOLDER}/{COMPARISON_FILE}", tmp_path
    )
    assert found is not None  # what the Compare page shows
    assert json.loads(found.read_text())["champion"] == first.model_version
    model = registry.load_version(second.model_version)
    assert model.reference is not None
    assert model.lineage is not None
    first_ids = {s["id"] for s in first.segments}
    assert {s["id"] for s in second.segments} == set(model.segment_ids)
    new = {s["id"] for s in second.segments} - first_ids
    assert all(i >= max(first_ids) + 1 for i in new)  # ids are never reused
    # judged by its gates like any challenger (quick fits may fail them), never refused for a
    # missing training sample
    promoted = promote_by_hand(
        registry, second.model_version, "test", force=True, reason="the discovery's advice"
    )
    assert promoted.comparison is not None
    # segmented on monthly customers, the champion on all of them: a gate says so
    customers = next(g for g in promoted.comparison.gates if g.name == "customers")
    assert not customers.passed
    assert customers.threshold == "all customers"
    assert "interval in month" in customers.basis
    # the Compare page and `segments compare` say so above the figures side by side
    from models.comparison import different_customers

    document = promoted.comparison.as_dict()
    assert different_customers(document["gates"]) == ("all customers", "interval in month")
    from cli_support import segments_in_process

    env = {**os.environ, "SEGMENTS_HOME": str(home.home)}
    args = ["compare", second.model_version, first.model_version, "--no-log"]
    compared = segments_in_process(args, env)
    assert compared.returncode == 3, compared.stderr  # the customers gate fails
    assert (
        "the two versions segmented different customers: the champion all customers, the "
        "challenger interval in month; each side's shares and churn are of its own customers"
    ) in " ".join(compared.stdout.split())
    assert registry.alias_version(CHAMPION) == second.model_version


def registry_model(trained, version: str):
    from models.registry import ModelRegistry
    from pipelines.tracking import registry_config

    return ModelRegistry(registry_config(StoreLayout(trained.home))).load_version(version)


def test_cancel_a_queued_and_a_running_job(api):
    first = post(api, {"as_of": AS_OF}).json()
    second = post(api, {"as_of": AS_OF, "max_segments": 5}).json()
    assert second["id"] != first["id"]
    resent = post(api, {"as_of": AS_OF})  # the first, sent again while it waits or runs
    assert resent.status_code == 202
    assert resent.json()["id"] == first["id"]
    assert resent.headers["Location"] == f"/v1/discoveries/{first['id']}"
    wait_until(api, first["id"], lambda job: job["status"] == "running", 60)
    queued = api.request("DELETE", f"/v1/discoveries/{second['id']}", key="discover-key")
    assert queued.status_code == 200
    assert queued.json()["status"] == "cancelled"
    running = api.request("DELETE", f"/v1/discoveries/{first['id']}", key="discover-key")
    assert running.json()["status"] == "cancelled"
    again = api.request("DELETE", f"/v1/discoveries/{first['id']}", key="discover-key")
    assert again.status_code == 409
    deadline = time.monotonic() + 30
    while api.app.state.discoveries._process is not None:  # killed, not left to finish
        assert time.monotonic() < deadline
        time.sleep(0.2)
    time.sleep(1)
    for job_id in (first["id"], second["id"]):
        job = api.get(f"/v1/discoveries/{job_id}", key="discover-key").json()
        assert job["status"] == "cancelled"
        assert job["result"] is None


def test_a_restart_marks_the_running_job_interrupted_and_keeps_the_queue(trained):
    jobs = DiscoveryJobs(StoreLayout(trained.home).jobs_path)
    # A service killed outright: its job's row says running, with a process that is gone.
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    crashed = jobs.create({"as_of": AS_OF})
    with jobs._connection(immediate=True) as con:
        con.execute(
            "UPDATE discovery_jobs SET status = 'running', runner_pid = ? WHERE id = ?",
            [gone.pid, crashed.id],
        )
    assert jobs.mark_interrupted() == [crashed.id]
    failed = jobs.get(crashed.id)
    assert failed.status == "failed"
    assert failed.error == INTERRUPTED
    # A service stopped while its job runs: the job is interrupted, the queued one survives.
    with service(trained) as first_life:
        running = post(first_life, {"as_of": AS_OF}).json()
        queued = post(first_life, {"as_of": AS_OF, "max_segments": 5}).json()
        wait_until(first_life, running["id"], lambda job: job["status"] == "running", 60)
    assert jobs.get(running["id"]).error == INTERRUPTED
    assert jobs.get(queued["id"]).status == "queued"
    jobs.cancel(queued["id"])  # not to be run by the next test's service


def test_the_cli_refuses_a_bad_discovery_in_one_line(trained):
    env = {**os.environ, "SEGMENTS_HOME": str(trained.home)}
    result = subprocess.run(
        [sys.executable, "-m", "pipelines", "discover", "--as-of", AS_OF, "--filter", "size=9"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "unknown filter column 'size'" in lines[0]


def test_the_cli_discovers_in_the_foreground_and_registers_a_challenger(trained):
    env = {**os.environ, "SEGMENTS_HOME": str(trained.home), "PYTHONWARNINGS": "ignore"}
    command = [
        *("discover", "--as-of", AS_OF, "--filter", "country=FR", "--families", "value"),
        *("--max-segments", "3", "--mrr-min", "0", "--quick", "--json"),
    ]
    result = subprocess.run(
        [sys.executable, "-m", "pipelines", *command],
        capture_output=True,
        text=True,
        env=env,
        timeout=JOB_SECONDS,
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["alias"] == "challenger"
    assert "country in FR" in found["selection"]
    assert 2 <= found["n_segments"] <= 3


def test_a_full_queue_is_a_429_and_queues_nothing(trained):
    settings = Settings(
        home=trained.home,
        api_keys=KEYS,
        poll_interval_seconds=3600,
        discovery_quick=True,
        discovery_max_queued=2,
    )
    with InProcessService(create_app(settings, source=InProcessSource(trained.model))) as api:
        jobs = api.app.state.discoveries.jobs
        # One job "running" (claimed by this test's process, so the service's runner starts
        # none) and two waiting: as many as allowed.
        running = jobs.create({"as_of": AS_OF, "filters": {}})
        assert jobs.claim_next(os.getpid()).id == running.id
        waiting = [jobs.create({"as_of": AS_OF, "segments": k}).id for k in (3, 4)]
        try:
            before = {job.id for job in jobs.recent(1000)}
            refused = post(api, {"as_of": AS_OF})
            assert refused.status_code == 429, refused.text
            assert refused.json()["code"] == "discovery_queue_full"
            assert refused.headers["Retry-After"] == "60"
            assert "at most 2" in refused.json()["detail"]
            assert {job.id for job in jobs.recent(1000)} == before  # nothing queued
        finally:
            for job_id in (running.id, *waiting):
                jobs.cancel(job_id)


def test_old_finished_jobs_are_deleted_as_new_ones_come(tmp_path, monkeypatch):
    from feature_store import jobs as job_store

    monkeypatch.setattr(job_store, "KEEP_FINISHED", 3)
    store = DiscoveryJobs(tmp_path / "jobs.sqlite")
    made = []
    for _ in range(6):
        made.append(store.create({"as_of": AS_OF}).id)
        store.cancel(made[-1])
    running = store.create({"as_of": AS_OF})
    assert store.claim_next(os.getpid()).id == running.id  # unfinished jobs are never deleted
    newest = store.create({"as_of": AS_OF, "segments": 3})
    kept = {job.id for job in store.recent(100)}
    assert kept == {*made[-3:], running.id, newest.id}
    # the same request while a job of it waits or runs is that job (a form sent twice queued
    # two identical discoveries), even with the queue full; once it has finished, a new one
    assert store.create({"as_of": AS_OF, "segments": 3}, max_queued=1).id == newest.id
    assert store.create({"as_of": AS_OF}).id == running.id
    assert store.create({"as_of": AS_OF, "max_segments": 5}).id not in kept
    # lists are sets here: the same families or filter values in another order are one request
    one = store.create(
        {"as_of": AS_OF, "families": ["value", "behavioural"], "f": {"p": ["b", "a"]}}
    )
    other = store.create(
        {"as_of": AS_OF, "families": ["behavioural", "value"], "f": {"p": ["a", "b"]}}
    )
    assert one.id == other.id
    store.cancel(one.id)
    with pytest.raises(job_store.QueueFullError, match="at most 2"):
        store.create({"as_of": AS_OF, "segments": 4}, max_queued=2)  # two wait already
    # The logs of deleted jobs go too (the runner prunes them before it runs a job).
    from service.discoveries import DiscoveryRunner

    logs = tmp_path / "logs"
    logs.mkdir()
    for job_id in made:
        (logs / f"{job_id}.log").write_text("done\n")
    DiscoveryRunner(store, [], {}, logs)._prune_logs()
    assert {log.stem for log in logs.glob("*.log")} == set(made[-3:])


def test_the_discover_forms_plan_and_interval_values_follow_the_billing_events(tmp_path):
    """Read once per change of the billing events (their part names), not on every page."""
    from feature_store.cohort import FilterValuesCache

    layout = StoreLayout(tmp_path / "home")
    cache = FilterValuesCache()
    assert cache.get(layout) == {"plan": {}, "interval": {}}  # an empty store
    billing = tmp_path / "billing.csv"
    header = "event_id,customer_id,occurred_at,type,plan,interval,mrr,seats,currency\n"
    rows = [
        f"b{i},c{i},2026-01-0{1 + i % 5},subscription_started,{plan},month,10,1,USD\n"
        for i, plan in enumerate(["team", "team", "solo"])
    ]
    billing.write_text(header + "".join(rows))
    ingest_files(layout, {"billing": billing})
    first = cache.get(layout)
    # each with the customers it selects now, the most first
    assert first == {"plan": {"team": 2, "solo": 1}, "interval": {"month": 3}}
    assert list(first["plan"]) == ["team", "solo"]
    assert cache.get(layout) is first  # nothing changed: not read again
    more = tmp_path / "more.csv"
    more.write_text(
        header + "b9,c9,2026-02-01,subscription_started,pro,year,90,3,USD\n"
        # both team customers cancel: team selects nobody now, and is listed last
        "b10,c0,2026-03-01,subscription_canceled,team,month,,,\n"
        "b11,c1,2026-03-01,subscription_canceled,team,month,,,\n"
    )
    ingest_files(layout, {"billing": more})
    now = cache.get(layout)
    assert now["interval"] == {"month": 1, "year": 1}
    assert now["plan"] == {"pro": 1, "solo": 1, "team": 0}
    assert list(now["plan"]) == ["pro", "solo", "team"]


def test_a_business_without_subscriptions_is_not_offered_plan_interval_or_mrr_filters(tmp_path):
    """A retailer's form offered empty plan and interval fields and MRR bounds that selected
    nobody (a product team's review); its own attributes are still offered."""
    from feature_store.cohort import FilterValuesCache
    from service.ui.discover import offered_filters

    layout = StoreLayout(tmp_path / "home")
    invoices = tmp_path / "billing.csv"
    invoices.write_text(
        "event_id,customer_id,occurred_at,type,amount,currency\n"
        "i1,c1,2026-01-01,invoice_paid,12.5,GBP\ni2,c2,2026-01-02,invoice_paid,40,GBP\n"
    )
    ingest_files(layout, {"billing": invoices})
    values = FilterValuesCache().get(layout)
    assert offered_filters(["plan", "interval", "region"], values) == (["region"], False)
    with_plans = {"plan": {"team": 3}, "interval": {"month": 3}}
    assert offered_filters(["plan", "interval"], with_plans) == (["plan", "interval"], True)


@pytest.mark.parametrize(
    ("champion", "advice"),
    [
        (None, "(champion: none yet; `segments promote 4` makes it champion)"),
        (
            "2",
            "(champion: 2; `segments compare` shows its gates, `segments promote 4` makes it "
            "champion when they pass)",
        ),
    ],
)
def test_the_cli_says_how_a_discovered_challenger_becomes_champion(capsys, champion, advice):
    """With a champion, through its comparison; with none there is no comparison to show, and
    the first version answers to its own gates when promoted."""
    from pipelines.cli.discover import _print_discovery
    from pipelines.discover import DiscoveryResult

    result = DiscoveryResult(
        "run", "4", "challenger", champion, 40, 2, {}, [], None, "all customers", 1.0
    )
    _print_discovery(result)
    printed = " ".join(capsys.readouterr().out.split())
    assert f"version 4 is the challenger {advice}" in printed


def test_families_with_no_events_behind_them_are_refused_before_queueing(demo_company, tmp_path):
    """With no usage event at all, a discovery of the behavioural family alone would segment on
    fallbacks (the days since a last activity nobody had are tenure); it failed inside the job."""
    from feature_store.discovery import DiscoveryRequest, DiscoveryRequestError, check_request
    from feature_store.ingest import ingest_files
    from feature_store.layout import StoreLayout
    from feature_store.timeutil import parse_as_of

    path = tmp_path / "billing.parquet"
    demo_company.billing.to_pandas().to_parquet(path, index=False)
    layout = StoreLayout(tmp_path / "home")
    ingest_files(layout, {"billing": path})
    as_of = parse_as_of(AS_OF)
    with pytest.raises(DiscoveryRequestError, match="need usage events, and the data has none"):
        check_request(layout, DiscoveryRequest(as_of, families=("behavioural",)))
    check_request(layout, DiscoveryRequest(as_of, families=("value", "behavioural")))


def test_a_cohort_with_no_paid_invoice_is_not_segmented_on_payment_rates(demo_company, tmp_path):
    """Missing event kinds are judged on the cohort's own events: a cohort whose customers paid
    no invoice would segment on a payment failure rate of 100% for anyone who failed once, though
    the data home as a whole has paid invoices."""
    from feature_store.registry import SEGMENTED_FEATURE_NAMES, feature

    billing = demo_company.billing.to_pandas()
    ids = sorted(billing["customer_id"].unique())
    germans = set(ids[1::2])
    unpaid = billing[~(billing["customer_id"].isin(germans) & (billing["type"] == "invoice_paid"))]
    home = tmp_path / "home"
    files = {"billing": tmp_path / "billing.parquet", "usage": tmp_path / "usage.parquet"}
    unpaid.to_parquet(files["billing"], index=False)
    demo_company.usage.to_pandas().to_parquet(files["usage"], index=False)
    attributes = tmp_path / "customers.csv"
    attributes.write_text(
        "customer_id,country\n" + "".join(f"{c},{'DE' if c in germans else 'FR'}\n" for c in ids)
    )
    layout = StoreLayout(home)
    ingest_files(layout, files, customers=attributes)
    as_of = parse_as_of(AS_OF)
    paying = discover(layout, DiscoveryRequest(as_of, Cohort({"country": ("FR",)})), quick=True)
    assert paying.left_out == {}
    unpaying = discover(layout, DiscoveryRequest(as_of, Cohort({"country": ("DE",)})), quick=True)
    assert unpaying.left_out == {
        "invoice_paid": [n for n in SEGMENTED_FEATURE_NAMES if feature(n).needs == "invoice_paid"]
    }
    assert "payment_failure_rate_365d" in unpaying.left_out["invoice_paid"]  # the rate, named


def test_a_discovery_of_everyone_counts_the_churned_as_training_does(trained):
    """Promoted in place of a trained champion with the same segments, a discovery of every
    customer halved the churned count the pages showed (328 to 165): it never placed those who
    cancelled before the window. A selection's are still not placed (not known whom it held)."""
    layout = StoreLayout(trained.home)
    result = discover(layout, DiscoveryRequest(parse_as_of(AS_OF), segments=3), quick=True)
    trained_churned = trained.model.churned  # measured as `segments train` measures it
    assert trained_churned.before_window  # the generated company has earlier churners
    assert result.churned["before_window"] == trained_churned.before_window
    assert result.churned["count"] == trained_churned.count


def test_the_runner_is_woken_from_another_thread_safely(tmp_path):
    """The cancel routes run in the thread pool and wake the runner from there; an
    ``asyncio.Event`` set off its loop's thread raised under asyncio's debug mode and left the
    waiting runner to its next poll. Set from a thread, the runner wakes at once."""
    import asyncio
    import threading

    from service.discoveries import POLL_SECONDS, DiscoveryRunner

    runner = DiscoveryRunner(DiscoveryJobs(tmp_path / "jobs.sqlite"), [], {}, tmp_path / "logs")

    async def scenario() -> float:
        loop_task = asyncio.create_task(runner.run())
        await asyncio.sleep(0.5)  # the runner found no job and waits on its event
        woken = asyncio.Event()
        original = runner.jobs.claim_next

        def claim_next(pid: int):  # the runner looks again (in a worker thread): it was woken
            loop.call_soon_threadsafe(woken.set)
            return original(pid)

        runner.jobs.claim_next = claim_next  # type: ignore[method-assign]
        started = time.monotonic()
        threading.Thread(target=runner.wake).start()
        await asyncio.wait_for(woken.wait(), POLL_SECONDS * 2)
        waited = time.monotonic() - started
        loop_task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await loop_task
        return waited

    loop = asyncio.new_event_loop()
    loop.set_debug(True)
    try:
        assert loop.run_until_complete(scenario()) < POLL_SECONDS
    finally:
        loop.close()


def test_a_selection_of_mrr_up_to_zero_is_described_as_such_not_as_any():
    """`"mrr_max": 0` read "MRR 0 to any" in the empty selection's message (a CRM integrator's
    review): a maximum of 0 is a bound."""
    from feature_store.cohort import Cohort

    assert Cohort(mrr_min=0.0, mrr_max=0.0).describe() == "MRR 0 to 0"  # floats, as typed
    assert Cohort(mrr_min=10.0).describe() == "MRR 10 to any"
    assert Cohort(mrr_max=500.0).describe() == "MRR 0 to 500"
    # as typed: no exponent, no rounding to six digits (":g" wrote "1.23457e+06")
    assert Cohort(mrr_min=1e6, mrr_max=1234567.0).describe() == "MRR 1000000 to 1234567"
    assert Cohort(mrr_max=12345.675).describe() == "MRR 0 to 12345.675"
