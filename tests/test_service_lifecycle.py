"""Model lifecycle against a real service: the champion alias moves to a new version and to a
broken one while requests flow, and the service starts from its verified local copy when the
registry is unreachable."""

from __future__ import annotations

import re
import shutil
import tempfile
import threading
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest
from concurrency_support import wait_until
from service_support import base_env, client, free_port, running_service, trained_home

CUSTOMERS = [f"cus_{i:06d}" for i in range(0, 300, 7)]


@pytest.fixture(scope="module")
def home(shared_root, tmp_path_factory, demo_files) -> Path:
    """A copy of the trained home, so moving its aliases cannot disturb other modules."""
    shared = trained_home(shared_root, demo_files)
    own = tmp_path_factory.mktemp("lifecycle") / "home"
    shutil.copytree(shared, own)
    return own


@pytest.fixture(scope="module")
def registry(home):
    from models.registry import ModelRegistry, RegistryConfig

    return ModelRegistry(RegistryConfig.for_home(home))


def register_renamed_copy(registry, home: Path, version: str) -> tuple[str, set[str]]:
    """A new version: the same segmenter with other segment names, registered as training does."""
    from models.registry import MODEL_DIR, save_model

    model = registry.load_version(version)
    for profile in model.profiles:
        profile.name = f"{profile.name} (renamed)"
    example = pd.read_parquet(home / "features.parquet")[model.feature_names].head(5).astype(float)
    with tempfile.TemporaryDirectory() as tmp, registry.run() as run_id:
        folder = Path(tmp) / MODEL_DIR
        hashes = save_model(model, folder)
        new = registry.register_version(run_id, model, folder, hashes, example)
    return new, {profile.name for profile in model.profiles}


def register_tampered_copy(registry, version: str) -> str:
    """A new version of the same files whose recorded sha256 of the segmenter is wrong."""
    from models.registry import SEGMENTER_FILE, SHA_TAG_PREFIX

    name = registry.model_name
    original = registry.client.get_model_version(name, version)
    tags = {
        key: "0" * 64 if key == SHA_TAG_PREFIX + SEGMENTER_FILE else value
        for key, value in original.tags.items()
        if key.startswith(SHA_TAG_PREFIX)
    }
    copy = registry.client.create_model_version(
        name, original.source, run_id=original.run_id, tags=tags
    )
    return str(copy.version)


class Traffic:
    """Threads scoring customers without pause; every answer is kept for the checks."""

    def __init__(self, url: str, threads: int = 3) -> None:
        self.url, self.stop = url, threading.Event()
        self.answers: list[tuple[int, str | None, str | None]] = []
        self.threads = [threading.Thread(target=self._run, args=(n,)) for n in range(threads)]

    def _run(self, offset: int) -> None:
        with client(self.url, "score-key") as http:
            position = offset
            while not self.stop.is_set():
                customer = CUSTOMERS[position % len(CUSTOMERS)]
                position += 1
                try:
                    response = http.post("/v1/score", json={"customer_id": customer, "top_k": 3})
                except httpx.HTTPError as error:
                    self.answers.append((0, None, repr(error)))
                    continue
                body = response.json()
                if response.status_code == 200:
                    self.answers.append((200, body["model"]["version"], body["segment"]["name"]))
                else:
                    self.answers.append((response.status_code, None, body.get("detail")))

    def __enter__(self) -> Traffic:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def wait_for_version(self, version: str, timeout: float = 600) -> None:
        """Until the last 30 answers all come from ``version`` (every worker has swapped)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            recent = self.answers[-30:]
            if len(recent) == 30 and all(answer[1] == version for answer in recent):
                return
            time.sleep(0.2)
        raise AssertionError(f"version {version} not served after {timeout} s: {self.answers[-5:]}")


def segment_names(url: str) -> set[str]:
    with client(url, "read-key") as http:
        return {segment["name"] for segment in http.get("/v1/segments").json()["segments"]}


def test_alias_moves_swap_the_model_without_a_failed_request_and_never_serve_a_broken_one(
    home, registry, tmp_path
):
    from models.registry import CHAMPION

    first = (home / "READY").read_text()
    env = base_env(home, SEGMENTS_POLL_INTERVAL_SECONDS="0.25")
    with running_service(env, tmp_path / "serve.log", workers=2) as url:
        names = {first: segment_names(url)}
        with Traffic(url) as traffic:
            traffic.wait_for_version(first)
            renamed, names[renamed] = register_renamed_copy(registry, home, first)
            registry.set_alias(CHAMPION, renamed)
            traffic.wait_for_version(renamed)

            broken = register_tampered_copy(registry, first)
            registry.set_alias(CHAMPION, broken)
            # Each worker refuses it once; wait for both verdicts rather than a fixed time.
            wait_until(
                lambda: failures_counted(url, "integrity") >= 2,
                "both refusals",
                timeout=600,
                every=0.2,
            )
            served_meanwhile = {answer[1] for answer in traffic.answers[-30:]}

            registry.set_alias(CHAMPION, first)
            traffic.wait_for_version(first)
        metrics = httpx.get(url + "/metrics").text
        with client(url, "read-key") as http:
            card = http.get("/v1/model").json()

    assert served_meanwhile == {renamed}
    failed = [answer for answer in traffic.answers if answer[0] != 200]
    assert not failed, failed[:5]
    assert len(traffic.answers) > 200
    served = {answer[1] for answer in traffic.answers}
    assert served == {first, renamed}
    assert broken not in served
    for _, version, name in traffic.answers:  # a response never mixes two versions
        assert name in names[version]
    assert card["version"] == first
    refused = [
        line
        for line in metrics.splitlines()
        if line.startswith('segments_model_reload_failures_total{reason="integrity"}')
    ]
    assert refused
    assert float(refused[0].split()[-1]) >= 2  # each worker refused it once
    assert f"version {broken} refused" in (tmp_path / "serve.log").read_text()


def test_a_browser_session_holds_on_every_worker(home, tmp_path):
    """Sessions are in the data home, not in one worker's memory: signed in once, every page
    answers, whichever of the two workers takes the connection (a new one per request)."""
    with running_service(base_env(home), tmp_path / "ui.log", workers=2) as url:
        with httpx.Client(base_url=url, timeout=60) as browser:
            form = browser.get("/ui/sign-in").text
            token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
            data = {"csrf_token": token, "api_key": "read-key"}
            assert browser.post("/ui/sign-in", data=data).status_code == 303
            cookie = {"segments_ui_session": browser.cookies["segments_ui_session"]}
        answers = [
            httpx.get(url + "/ui", cookies=cookie, headers={"Connection": "close"}, timeout=60)
            for _ in range(30)
        ]
    assert [a.status_code for a in answers] == [200] * 30


@pytest.fixture
def cached(home, registry) -> str:
    """The champion's verified files in the home's local copy, as a serving process leaves them."""
    from models.registry import CHAMPION

    version = (home / "READY").read_text()
    registry.set_alias(CHAMPION, version)
    with tempfile.TemporaryDirectory() as tmp:
        downloaded = registry.download(version, Path(tmp))
        local_copy(home).store(version, downloaded.folder, downloaded.hashes)
    return version


def local_copy(home: Path):
    from service.cache import LocalModelCache
    from service.settings import Settings

    settings = Settings(home=home)
    return LocalModelCache(settings.model_cache_dir, settings.model_cache_key_file)


def failures_counted(url: str, reason: str) -> float:
    prefix = f'segments_model_reload_failures_total{{reason="{reason}"}}'
    lines = [
        line for line in httpx.get(url + "/metrics").text.splitlines() if line.startswith(prefix)
    ]
    return float(lines[0].split()[-1]) if lines else 0.0


def copy_is_whole(home: Path, version: str) -> bool:
    from models.registry import ModelIntegrityError

    try:
        last_good = local_copy(home).last_good()
    except ModelIntegrityError:
        return False
    return last_good is not None and last_good.version == version


def test_the_service_starts_from_its_verified_copy_when_the_registry_is_unreachable(
    home, cached, tmp_path
):
    # a registry address with a user and password, as MLflow takes them: they were in every
    # log line while the registry was down (an operator's review)
    unreachable = f"http://ops:s3cretPW@127.0.0.1:{free_port()}"
    env = base_env(
        home,
        MLFLOW_TRACKING_URI=unreachable,
        SEGMENTS_REGISTRY_TIMEOUT_SECONDS="2",
        SEGMENTS_POLL_INTERVAL_SECONDS="0.5",
    )
    log = tmp_path / "offline.log"
    with running_service(env, log) as url, client(url) as http:
        card = http.get("/v1/model").json()
        assert card["source"] == "cache"
        assert card["version"] == cached
        answer = http.post("/v1/score", json={"customer_id": CUSTOMERS[0]})
        assert answer.status_code == 200, answer.text
        assert answer.json()["model"]["version"] == card["version"]
        # polls go on failing while the copy is served: said once, as a warning, not an error
        wait_until(lambda: failures_counted(url, "registry_unreachable") >= 3, "three polls")
    text = log.read_text()
    assert "s3cretPW" not in text
    assert "http://***@127.0.0.1" in text
    assert text.count(f"still serving version {cached}") == 1
    # each line says when and which worker (two workers' lines could not be told apart)
    [warned] = [line for line in text.splitlines() if "still serving version" in line]
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} \[\d+\] WARNING: ", warned)
    assert text.count("model not loaded") <= 1  # the first poll, before the copy was loaded


def test_a_tampered_local_copy_is_refused_then_replaced_by_the_next_registry_load(
    home, cached, tmp_path
):
    [segmenter] = list((home / "service" / "model-cache").glob("v*/segmenter.joblib"))
    original = segmenter.read_bytes()
    segmenter.write_bytes(original + b"tampered")
    unreachable = f"http://ops:s3cretPW@127.0.0.1:{free_port()}"
    env = base_env(home, MLFLOW_TRACKING_URI=unreachable, SEGMENTS_REGISTRY_TIMEOUT_SECONDS="2")
    try:
        with (
            running_service(env, tmp_path / "tampered.log", ready=False) as url,
            client(url) as http,
        ):
            wait_until(
                lambda: failures_counted(url, "cache") >= 1,
                "the local copy's refusal",
                timeout=600,
                every=0.2,
            )
            ready = http.get("/health/ready")
            assert ready.status_code == 503
            assert ready.json()["code"] == "model_unavailable"
            assert ready.headers["retry-after"]  # as the scoring routes' 503 says it
            # asked without a key, it names no address or path of the registry; a route that
            # takes a key says why
            assert unreachable not in ready.text
            assert str(home) not in ready.text
            assert "could not be loaded" in ready.json()["detail"]
            answer = http.post("/v1/score", json={"customer_id": CUSTOMERS[0]})
            assert answer.status_code == 503
            assert answer.headers["retry-after"]
            assert "no model is loaded yet: " in answer.json()["detail"]
            assert "s3cretPW" not in answer.text
        assert "sha256" in (tmp_path / "tampered.log").read_text()
        assert "s3cretPW" not in (tmp_path / "tampered.log").read_text()
        # With the registry back, the service loads from it and replaces the damaged copy.
        with running_service(base_env(home), tmp_path / "repaired.log"):
            # The copy is stored just after the model is installed, so wait for it too.
            wait_until(
                lambda: copy_is_whole(home, cached),
                "the repaired local copy",
                timeout=600,
                every=0.2,
            )
        assert segmenter.read_bytes() == original
    finally:
        segmenter.write_bytes(original)
