"""The model registry and the model files: the one home of MLflow and of what goes to disk.

Files: ``save_model`` writes a model's files and returns the sha256 of each; ``load_model``
unpickles nothing before every file matches hashes that come from somewhere else (the registry's
version tags, or the service's signed local record), never from the folder itself.

Registry: ``ModelRegistry`` wraps one ``MlflowClient`` built from the explicit URIs of a
``RegistryConfig``. Runs, metrics, artifacts, versions and aliases all go through that client;
nothing here sets MLflow's process-wide tracking or registry URI, the active run or an
environment variable. MLflow reads its HTTP timeout from the environment only, so an entry point
that wants a bounded wait applies ``client_environment`` itself.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import socket
import tempfile
import time
import warnings
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from urllib.parse import urlparse

import joblib
import pandas as pd
from filelock import FileLock, Timeout
from mlflow import MlflowClient
from mlflow.artifacts import download_artifacts
from mlflow.entities import (
    LoggedModelOutput,
    LoggedModelStatus,
    Metric,
    Param,
    RunStatus,
    RunTag,
)
from mlflow.exceptions import MlflowException
from mlflow.models import Model, infer_signature
from mlflow.pyfunc import PythonModel, PythonModelContext
from mlflow.pyfunc import save_model as save_pyfunc

from feature_store.currency import CurrencyLevels
from feature_store.errors import SegmentsError
from feature_store.formats import first_line, shortened
from models.bundle import SegmentModel
from models.business import ChurnedCustomers, MembersThen, SegmentBacktest
from models.lineage import lineage_from_dict, served_ids
from models.population import PopulationQuantiles
from models.profiles import Distinction, Driver, SegmentProfile

logger = logging.getLogger(__name__)

# Characters of a promotion's reason kept in ``champion.history`` (about 25 changes fit the tag)
HISTORY_REASON_CHARACTERS = 120

MODEL_NAME = "customer-segments"
# A promotion compares two versions and moves an alias: seconds. Ten minutes of waiting means the
# holder is stuck (or a retrain's comparison on a huge sample); refuse rather than wait for ever.
PROMOTION_WAIT_SECONDS = 600.0
EXPERIMENT_NAME = "customer-segments"
CHAMPION, CHALLENGER = "champion", "challenger"
# The registered model's tag recording every change of champion (``ModelRegistry.make_champion``),
# and how long a tag value may be (MLflow's limit for registered-model tags).
CHAMPION_HISTORY = "champion.history"
MAX_TAG_CHARACTERS = 5000
EMBEDDED_STORE = "mlflow.db"
EMBEDDED_ARTIFACTS = "mlartifacts"

SEGMENTER_FILE = "segmenter.joblib"
EXPLAINER_FILE = "explainer.joblib"
PROFILES_FILE = "profiles.json"
# A sample of the training rows (the model's columns and the other registry features), the
# reference drift is measured against and comparisons place both versions on.
REFERENCE_FILE = "reference.parquet"
MANIFEST_FILE = "manifest.json"
# Version tag ``sha256.<file>`` holds the sha256 of each model file, written with the version.
SHA_TAG_PREFIX = "sha256."
# On a version from its creation until its training has written its lineage and report: a
# training killed in between left a version that `segments compare` and `promote` took for a
# finished one with no lineage (an ML engineer's review, 2026-12-08). Versions registered before
# the tag existed have none, and count as finished.
UNFINISHED_TAG = "segments.unfinished"
# Which machine and process started a run, so a later run can end one whose process was killed.
HOST_TAG, PROCESS_TAG = "segments.host", "segments.process"
ENDED_BY_TAG = "segments.ended_by"
# A param training logged beside the one a launcher (``mlflow run``) logged as typed, with the
# value training read it as (``ModelRegistry.log_values``, ``version_params``).
RESOLVED = ".resolved"
# The pyfunc artifact key; MLflow stores the folder as ``artifacts/<key>`` inside the model.
MODEL_DIR = "model_dir"
PYFUNC_MODEL_DIR = f"artifacts/{MODEL_DIR}"
# What MLflow answers when a name, version or alias does not exist (rather than cannot be asked).
MISSING_CODES = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")
EXISTING_CODES = ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS")


def _failure_text(error: BaseException) -> str:
    """An MLflow failure in one line: its first line, and where that only announces a list
    ("The following failures occurred while downloading one or more artifacts from …:"), the
    first item of it too, which says why."""
    lines = [line.strip(" -") for line in str(error).splitlines() if line.strip(" -")]
    if not lines:
        return type(error).__name__
    # the items are "##### File model_dir #####" and then the error itself
    reasons = [line for line in lines[1:] if not line.startswith("#####")]
    if lines[0].endswith(":") and reasons:
        return shortened(f"{lines[0]} {reasons[0]}", 400)
    return lines[0]


class ModelIntegrityError(SegmentsError):
    """A model file is missing or its sha256 differs from the one recorded at registration."""


class RegistryError(SegmentsError):
    """The registry has no such version or alias, or cannot answer."""


class RegistryUnavailableError(RegistryError):
    """The registry could not be asked (server down, store missing, timeout)."""


# --- model files -------------------------------------------------------------------------------


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_model(model: SegmentModel, folder: Path) -> dict[str, str]:
    """Write the model files and a manifest; return their sha256 by file name."""
    folder.mkdir(parents=True, exist_ok=True)
    joblib.dump(model.segmenter, folder / SEGMENTER_FILE)
    files = [SEGMENTER_FILE, PROFILES_FILE]
    if model.explainer is not None:
        joblib.dump(model.explainer, folder / EXPLAINER_FILE)
        files.append(EXPLAINER_FILE)
    if model.reference is not None:
        model.reference.to_parquet(folder / REFERENCE_FILE, index=False)
        files.append(REFERENCE_FILE)
    (folder / PROFILES_FILE).write_text(json.dumps(_profiles_document(model), indent=2))
    hashes = {name: sha256_of(folder / name) for name in files}
    (folder / MANIFEST_FILE).write_text(json.dumps(hashes, indent=2))
    return hashes


def _profiles_document(model: SegmentModel) -> dict[str, object]:
    return {
        "feature_names": model.feature_names,
        "metrics": model.metrics,
        "trained_at": model.trained_at,
        "profiles": [p.as_dict() for p in model.profiles],
        "population_quantiles": model.population.as_dict() if model.population else None,
        "alike_features": model.population.alike if model.population else None,
        "churned": model.churned.as_dict() if model.churned else None,
        "backtest": [b.as_dict() for b in model.backtest] if model.backtest else None,
        "lineage": model.lineage.as_dict() if model.lineage else None,
        "history": [lineage.as_dict() for lineage in model.history],
        "currency": model.currency.as_dict() if model.currency else None,
        "features_as_of": model.features_as_of,
        "money_currency": model.money_currency,
        "last_active_segment": model.last_active_segment,
    }


def verify(folder: Path, expected: Mapping[str, str]) -> None:
    """Refuse unless every expected file exists with exactly the recorded sha256."""
    for name, digest in expected.items():
        path = folder / name
        if not path.is_file():
            raise ModelIntegrityError(f"model file {name} is missing from {folder}")
        actual = sha256_of(path)
        if actual != digest:
            raise ModelIntegrityError(
                f"model file {name} has sha256 {actual[:12]}..., expected {digest[:12]}...; "
                "refusing to load a file this project did not write"
            )


def load_model(
    folder: Path, expected: Mapping[str, str], version: str | None = None
) -> SegmentModel:
    """Verify, then load. ``expected`` comes from the registry, never from the folder itself;
    ``version``, the registered version the files are (binds ``since`` of its new segments)."""
    if not expected:
        raise ModelIntegrityError(f"no sha256 recorded for the model in {folder}; refusing to load")
    verify(folder, expected)
    data = json.loads((folder / PROFILES_FILE).read_text())
    segmenter = joblib.load(folder / SEGMENTER_FILE)
    # Only a file listed in the expected hashes (and so verified above) is ever unpickled.
    explainer = joblib.load(folder / EXPLAINER_FILE) if EXPLAINER_FILE in expected else None
    quantiles = data.get("population_quantiles")
    lineage = data.get("lineage")
    reference = folder / REFERENCE_FILE
    model = SegmentModel(
        segmenter,
        data["feature_names"],
        [_profile(p) for p in data["profiles"]],
        data.get("metrics", {}),
        explainer=explainer,
        trained_at=data.get("trained_at"),
        population=PopulationQuantiles(quantiles, data.get("alike_features") or {})
        if quantiles
        else None,
        churned=ChurnedCustomers.from_dict(data["churned"]) if data.get("churned") else None,
        backtest=[SegmentBacktest.from_dict(b) for b in data["backtest"]]
        if data.get("backtest")
        else None,
        lineage=lineage_from_dict(lineage) if lineage else None,
        history=tuple(lineage_from_dict(entry) for entry in data.get("history", [])),
        # A parquet file is data, not code: read when listed in (so verified against) the hashes.
        reference=pd.read_parquet(reference) if REFERENCE_FILE in expected else None,
        currency=CurrencyLevels.from_dict(data["currency"]) if data.get("currency") else None,
        features_as_of=data.get("features_as_of"),
        money_currency=data.get("money_currency"),
        last_active_segment={str(k): int(v) for k, v in data["last_active_segment"].items()}
        if data.get("last_active_segment")
        else None,
    )
    return model.bound_to(version) if version is not None else model


def _profile(document: dict) -> SegmentProfile:
    backtest = document.get("backtest")
    if backtest and backtest.get("members_then") is not None:
        # models trained on 2026-12-06 stored one mapping with -1 for "not paying then"; the
        # catalog serves the profile's own copy, so it is read in today's form here too
        then = MembersThen.from_dict(backtest["members_then"])
        document = {**document, "backtest": {**backtest, "members_then": asdict(then)}}
    return SegmentProfile(
        **{
            **document,
            "distinguishing": [Distinction(**d) for d in document["distinguishing"]],
            "drivers": [Driver(**d) for d in document.get("drivers", [])],
        }
    )


class SegmentsPyfunc(PythonModel):
    """The registered model as a generic MLflow pyfunc (for ``mlflow models serve`` and friends).

    It loads only after the files match the manifest written next to them at training time.
    """

    def load_context(self, context: PythonModelContext) -> None:
        folder = Path(context.artifacts[MODEL_DIR])
        self.model = load_model(folder, json.loads((folder / MANIFEST_FILE).read_text()))

    def predict(
        self, context: object, model_input: pd.DataFrame, params: object = None
    ) -> pd.DataFrame:
        return self.model.assign(model_input)


# --- the registry ------------------------------------------------------------------------------


# The user and password of an address (``scheme://user:password@host``), as MLflow accepts them in
# MLFLOW_TRACKING_URI: an operator's registry password was in every log line and in the 503 any
# scoring key received while the registry was down (an operator's review).
_CREDENTIALS = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@]+@")


def without_credentials(text: str) -> str:
    """``text`` with the user and password of every address in it replaced by ``***``: what a
    registry error may say in a log, a command's error line or an HTTP answer."""
    return _CREDENTIALS.sub(r"\g<scheme>***@", text)


@dataclass(frozen=True)
class RegistryConfig:
    """Which tracking and registry store, which registered model, which experiment."""

    tracking_uri: str
    artifact_location: str | None = None  # for a new experiment; a server decides by itself
    model_name: str = MODEL_NAME
    experiment_name: str = EXPERIMENT_NAME

    @classmethod
    def for_home(
        cls, home: Path, tracking_uri: str | None = None, model_name: str = MODEL_NAME
    ) -> RegistryConfig:
        """The server at ``tracking_uri`` when given, else the embedded store under ``home``."""
        if tracking_uri:
            return cls(tracking_uri, None, model_name)
        artifacts = (home / EMBEDDED_ARTIFACTS).as_uri()
        return cls(f"sqlite:///{home / EMBEDDED_STORE}", artifacts, model_name)

    @property
    def embedded_store(self) -> Path | None:
        """The SQLite file of an embedded store; ``None`` for a server."""
        prefix = "sqlite:///"
        uri = self.tracking_uri
        return Path(uri.removeprefix(prefix)) if uri.startswith(prefix) else None


def client_environment(timeout_seconds: float) -> dict[str, str]:
    """The variables an entry point puts in its process environment before any registry call
    so that a slow or dead server costs one bounded wait, not minutes of retries: MLflow reads
    these from the process environment only."""
    return {
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(max(1, round(timeout_seconds))),
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }


@dataclass(frozen=True)
class DownloadedVersion:
    """A version's model files in a local folder, with the sha256 the registry recorded for them.

    Not checked yet: ``load_model(folder, hashes)`` checks them before it unpickles anything, so
    the check happens once, where it protects.
    """

    version: str
    folder: Path
    hashes: dict[str, str]


@contextmanager
def _asking(what: str) -> Iterator[None]:
    """Translate MLflow's answers: missing -> ``RegistryError``, anything else (connection
    refused, timeout, HTTP 5xx, a broken store) -> ``RegistryUnavailableError``."""
    try:
        yield
    except MlflowException as error:
        # the first line: a store's error carries its SQL statement and parameters after it
        if error.error_code in MISSING_CODES:
            raise RegistryError(without_credentials(f"{what}: {first_line(error)}")) from None
        raise RegistryUnavailableError(
            without_credentials(f"registry: {first_line(error)}")
        ) from None
    except SegmentsError:
        raise
    except Exception as error:  # connection errors surface as many types
        raise RegistryUnavailableError(
            without_credentials(f"registry: {type(error).__name__}: {first_line(error)}")
        ) from None


def process_identity(pid: int | None = None) -> str:
    """Which process this is, for as long as the machine runs: boot, pid namespace (containers
    sharing a host's boot each count their own pids), pid and the pid's start time (a pid is
    reused; a pid with another start time is another process). Empty where ``/proc`` does not
    tell them: such a run is never judged from elsewhere."""
    pid = os.getpid() if pid is None else pid
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.stat(f"/proc/{pid}/ns/pid").st_ino
        # field 22 of /proc/<pid>/stat, counted after the command's closing parenthesis
        started = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""
    return f"{boot}:{namespace}:{pid}:{started}"


def process_gone(identity: str) -> bool:
    """Whether the process ``process_identity`` named is known to be gone: it ran under this
    boot and in this pid namespace, and no process by its pid and start time runs now. A run
    from another machine or container (a hostname is not unique), or of unknown identity, is
    never judged gone."""
    mine = process_identity()
    parts = identity.split(":")
    if not mine or len(parts) != 4 or parts[:2] != mine.split(":")[:2]:
        return False
    return process_identity(int(parts[2])) != identity


def _run_context_tags() -> dict[str, str]:
    """The tags MLflow's own runs carry (user, source, git commit when run from a checkout), as
    ``mlflow.start_run`` resolves them, and this package's version: which code made a run."""
    from mlflow.tracking.context.registry import resolve_tags
    from mlflow.utils.git_utils import get_git_commit

    try:
        code = metadata.version("customer-segments")
    except metadata.PackageNotFoundError:
        code = "unknown"
    tags = resolve_tags({"segments.code_version": code})
    # MLflow looks for a checkout around the entry script, which for `segments` is in the
    # virtualenv (ignored by git, so no commit); this package's own source knows it.
    commit = get_git_commit(str(Path(__file__).resolve().parent))
    if commit and "mlflow.source.git.commit" not in tags:
        tags["mlflow.source.git.commit"] = commit
    return tags


def version_description(model: SegmentModel) -> str:
    """A registered version's description, as the MLflow UI lists it."""
    names = "; ".join(
        f"{i}: {n}" for i, n in zip(model.segment_ids, model.segment_names, strict=True)
    )
    as_of = f", features as of {model.features_as_of}" if model.features_as_of else ""
    return f"{len(model.profiles)} segments{as_of}. {names}"


class ModelRegistry:
    """One MLflow tracking and registry connection, and every call this project makes to it."""

    def __init__(self, config: RegistryConfig, client: MlflowClient | None = None) -> None:
        self.config = config
        self.client = client or MlflowClient(config.tracking_uri, config.tracking_uri)
        self._experiment_id: str | None = None
        # how long a promotion waits for another to end (``promotion_lock``)
        self.promotion_wait_seconds = PROMOTION_WAIT_SECONDS

    @classmethod
    def existing(cls, config: RegistryConfig) -> ModelRegistry:
        """For readers: an embedded store that does not exist yet is unavailable, not created."""
        store = config.embedded_store
        if store is not None and not store.is_file():
            raise RegistryUnavailableError(
                f"no registry at {without_credentials(config.tracking_uri)}"
            )
        return cls(config)

    @property
    def model_name(self) -> str:
        return self.config.model_name

    @contextmanager
    def promotion_lock(self) -> Iterator[None]:
        """Held by every read-compare-move of the champion alias, so that two retrains finishing
        together do not both compare with the same champion and both promote. Waits at most
        ``promotion_wait_seconds``, then refuses in one line rather than hang behind a stuck
        holder."""
        with self._file_lock("promotion", "another promotion (a retrain or `segments promote`)"):
            yield

    @contextmanager
    def identity_lock(self) -> Iterator[None]:
        """Held from reading the next free public segment id to registering the version that
        takes ids from it, by every training and discovery: two trainings at once both read the
        counter and gave the same new id to two different groups (an ML engineer's review,
        2026-12-07). A lock of its own, so a promotion never waits for a training."""
        with self._file_lock("identity", "another training or discovery giving out segment ids"):
            yield

    @contextmanager
    def _file_lock(self, purpose: str, holder: str) -> Iterator[None]:
        """A file beside an embedded store's; for a server, one in this machine's temporary
        folder named after the server and model (processes on other machines are not held by
        it)."""
        store = self.config.embedded_store
        if store is not None:
            path = store.with_name(f"{store.name}.{purpose}.lock")
        else:
            key = hashlib.sha256(f"{self.config.tracking_uri}|{self.model_name}".encode())
            path = Path(tempfile.gettempdir()) / f"segments-{purpose}-{key.hexdigest()[:16]}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        # one lock object per path in this process (the wait is per call, so every registry
        # object builds it alike): a nested use is re-entered, not waited on
        lock = FileLock(str(path), is_singleton=True)
        try:
            lock.acquire(timeout=self.promotion_wait_seconds)
        except Timeout:
            raise SegmentsError(
                f"{holder} has held {path} for {self.promotion_wait_seconds:g} s; try again once "
                "it ends"
            ) from None
        try:
            yield
        finally:
            lock.release()

    # reading

    def alias_version(self, alias: str) -> str | None:
        """The version ``alias`` points at; ``None`` when it (or the model) does not exist.

        Raises ``RegistryUnavailableError`` when the registry cannot be asked.
        """
        try:
            with _asking(f"alias {alias}"):
                found = self.client.get_model_version_by_alias(self.model_name, alias)
        except RegistryUnavailableError:
            raise
        except RegistryError:
            return None
        return str(found.version)

    def resolve_version(self, version: str | None, alias: str = CHAMPION) -> str:
        """The given version after checking it exists, or the one ``alias`` names."""
        if version is None:
            named = self.alias_version(alias)
            if named is None:
                raise RegistryError(self._missing_alias_text(alias))
            return named
        try:
            with _asking(f"model {self.model_name} version {version}"):
                # MLflow's store casts the version to an int, so "3 ", " 3" and "03" all find
                # version 3; return the registry's spelling, never the caller's, or "3 " is not
                # the champion "3" (promote records "3 replaced 3", compare 2 02 compares 2 with
                # itself)
                found = self.client.get_model_version(self.model_name, version)
        except RegistryUnavailableError:
            raise
        except RegistryError:  # MLflow's "Model Version (name=…, version=7) not found"
            raise RegistryError(
                f"no version {version} of model {self.model_name}; `segments models list` shows "
                "the registered versions"
            ) from None
        return str(found.version)

    def _missing_alias_text(self, alias: str) -> str:
        """Why there is no ``alias`` model, and what to do: train, or (no champion, but a
        challenger whose gates failed) promote that challenger."""
        if alias == CHALLENGER and (champion := self.alias_version(CHAMPION)) is not None:
            return (
                f"no challenger is waiting (version {champion} is champion; a champion that is "
                "replaced stops being the challenger); `segments train` registers one, or name "
                f"two versions: `segments compare VERSION {champion}`"
            )
        waiting = self.alias_version(CHALLENGER) if alias == CHAMPION else None
        if waiting is None:
            return f"no {alias} model yet; run `segments train` first"
        return (
            f"no {alias} model yet: version {waiting} is the challenger; `segments promote "
            f"{waiting}` makes it champion (with `--force --reason TEXT` if its gates fail)"
        )

    def recorded_hashes(self, version: str) -> dict[str, str]:
        """The sha256 of each model file, as recorded with the version at registration."""
        with _asking(f"model {self.model_name} version {version}"):
            tags = self.client.get_model_version(self.model_name, version).tags
        prefix = SHA_TAG_PREFIX
        return {k.removeprefix(prefix): v for k, v in tags.items() if k.startswith(prefix)}

    def version_metrics(self, version: str) -> dict[str, float]:
        """The metrics of the run that registered ``version``."""
        with _asking(f"model {self.model_name} version {version}"):
            run_id = self.client.get_model_version(self.model_name, version).run_id
            return dict(self.client.get_run(run_id).data.metrics) if run_id else {}

    def version_tags(self, version: str) -> dict[str, str]:
        with _asking(f"model {self.model_name} version {version}"):
            return dict(self.client.get_model_version(self.model_name, version).tags)

    def version_params(self, version: str) -> dict[str, str]:
        """The params of the run that registered ``version``, each as training read it: a
        ``<name>.resolved`` value (``log_values``) in place of the one ``mlflow run`` logged as
        typed ("15" segments raised the cap of the ``max_segments`` typed as 12)."""
        run_id = self.version_run(version)
        if run_id is None:
            return {}
        params = self.client.get_run(run_id).data.params
        resolved = {
            name.removesuffix(RESOLVED): value
            for name, value in params.items()
            if name.endswith(RESOLVED)
        }
        return {**{k: v for k, v in params.items() if not k.endswith(RESOLVED)}, **resolved}

    def version_run(self, version: str) -> str | None:
        """The id of the run that registered ``version``."""
        with _asking(f"model {self.model_name} version {version}"):
            return self.client.get_model_version(self.model_name, version).run_id

    def model_tags(self) -> dict[str, str]:
        """The registered model's own tags (pins, the next free segment id); {} before any."""
        try:
            with _asking(f"model {self.model_name}"):
                return dict(self.client.get_registered_model(self.model_name).tags)
        except RegistryUnavailableError:
            raise
        except RegistryError:
            return {}

    def next_version(self) -> str:
        """The number the next registered version will get (MLflow counts up from the highest)."""
        try:
            with _asking(f"model {self.model_name}"):
                found = self.client.search_model_versions(f"name = '{self.model_name}'")
        except RegistryUnavailableError:
            raise
        except RegistryError:
            found = []
        return str(max((int(v.version) for v in found), default=0) + 1)

    def download_run_file(self, version: str, path: str, into: Path) -> Path | None:
        """One artifact of the run that registered ``version``; None when it has none there."""
        run_id = self.version_run(version)
        if run_id is None:
            return None
        try:
            local = self.client.download_artifacts(run_id, path, str(into))
        except (MlflowException, OSError):
            return None
        return Path(local) if Path(local).exists() else None

    def download(self, version: str, into: Path) -> DownloadedVersion:
        """Download a version's model files (only those) with their recorded sha256."""
        hashes = self.recorded_hashes(version)
        with _asking(f"model {self.model_name} version {version}"):
            source = self.client.get_model_version_download_uri(self.model_name, version)
        # Resolved here rather than through ``models:/``, which MLflow resolves with its
        # process-wide registry URI.
        artifacts = f"{source.rstrip('/')}/{PYFUNC_MODEL_DIR}"
        try:
            local = download_artifacts(
                artifact_uri=artifacts,
                dst_path=str(into),
                tracking_uri=self.config.tracking_uri,
                registry_uri=self.config.tracking_uri,
            )
        except MlflowException as error:
            # "No such artifact: 'model_dir'" named neither the version nor where it was sought
            raise ModelIntegrityError(
                f"version {version}'s model files cannot be read from {artifacts}: "
                f"{_failure_text(error)}{self._moved_home_hint(artifacts)}"
            ) from None
        return DownloadedVersion(version, Path(local), hashes)

    def _moved_home_hint(self, artifacts: str) -> str:
        """Where the registry's store is a file beside its artifacts (a data home's SQLite) and
        the artifacts it records lie elsewhere: MLflow keeps absolute paths, so a data home
        moved or copied still points where it was made (an ML engineer's review)."""
        store, files = urlparse(self.config.tracking_uri), urlparse(artifacts)
        if store.scheme != "sqlite" or files.scheme != "file":
            return ""
        # "sqlite:////abs/home/mlflow.db" parses to the path "//abs/home/mlflow.db"
        home = Path(store.path.removeprefix("/")).parent
        if Path(files.path).is_relative_to(home):
            return ""
        return (
            f"; the registry under {home} records its files under another folder, as a data "
            "home moved or copied does (MLflow keeps the paths of where it was made): use the "
            "data home where it was made, or train again in this one"
        )

    def load_version(self, version: str) -> SegmentModel:
        """Download, verify against the registry's hashes, load."""
        with tempfile.TemporaryDirectory() as tmp:
            downloaded = self.download(version, Path(tmp))
            try:
                return load_model(downloaded.folder, downloaded.hashes, version)
            except ModelIntegrityError as error:
                # its text named the temporary folder the files were downloaded to
                raise ModelIntegrityError(
                    f"version {version} of {self.model_name}: "
                    f"{str(error).replace(str(downloaded.folder), 'its downloaded files')}"
                ) from None

    def champion_history(self) -> list[dict[str, object]]:
        """Every change of champion the registry recorded (``make_champion``), oldest first,
        and one it did not: where the champion alias names another version than the last
        change recorded, an entry marked ``unrecorded`` says so. The alias moves before the
        history is written, and a promotion killed between the two left a champion no change
        had made, which `segments rollback` then refused to roll back from (an ML engineer's
        review, 2026-12-08); an alias moved by hand in MLflow's UI is the same case."""
        history = self._recorded_champion_history()
        champion = self.alias_version(CHAMPION)
        last = str(history[-1]["version"]) if history else None
        if champion is not None and history and champion != last:
            # what the version's promotion tags say of the change, written before the alias
            # moves (``pipelines.lifecycle``): a killed roll-back read as a promotion sent the
            # next roll-back back to the version it had left (a review, 2026-12-08)
            tags = self.version_tags(champion)
            history.append(
                {
                    "version": champion,
                    "at": tags.get("promoted_at"),
                    "by": "unrecorded (the alias moved without its change being recorded)",
                    "replaced": last,
                    "forced": tags.get("promotion.forced") == "true",
                    "unrecorded": True,
                    **(
                        {"rolled_back": True} if tags.get("promotion.rolled_back") == "true" else {}
                    ),
                    **({"reason": tags["promotion.reason"]} if "promotion.reason" in tags else {}),
                }
            )
        return history

    def _recorded_champion_history(self) -> list[dict[str, object]]:
        text = self.model_tags().get(CHAMPION_HISTORY)
        if not text:
            return []
        # A tag anyone can edit in the MLflow UI: one that no longer reads as a list of changes
        # is left out with a warning (training reads it to trace rolled-back ids, and stopped)
        try:
            history = json.loads(text)
        except ValueError:
            history = None
        if not isinstance(history, list) or not all(
            isinstance(entry, dict) and "version" in entry for entry in history
        ):
            logger.warning(
                "tag %s of model %s is not a list of changes; ignored",
                CHAMPION_HISTORY,
                self.model_name,
            )
            return []
        return history

    def served_by_others(self, champion: str, model: SegmentModel) -> dict[int, str]:
        """Ids ``model`` (the version ``champion``) does not know that another version served as
        champion (rolled back past, or replaced by an older version promoted over it), each with
        the version that served it last, most recently served first: what a 404 tells a CRM that
        holds one, and which segments a new version may give back (``pipelines.identity``). An
        id a more recently served version retired is left out: a CRM was told where it went.
        From the versions' lineage tags, no model loaded; the champion's ancestors are not asked
        (their ids are all known), so a registry that never rolled back asks nothing more."""
        served = [str(entry["version"]) for entry in self.champion_history()]
        out: dict[int, str] = {}
        skip = model.known_segment_ids()
        ancestors = {champion} | model.traced_versions()
        for version in dict.fromkeys(reversed(served)):
            if version in ancestors:
                continue
            try:
                tags = self.version_tags(version)
            except RegistryUnavailableError:
                raise
            except RegistryError as error:  # deleted since it served: the others still count
                logger.warning("ids of version %s, which served, not read: %s", version, error)
                continue
            for public in served_ids(tags) - skip:
                out.setdefault(public, version)
            skip |= served_ids(tags, ("retired",))
        return out

    # writing

    def make_champion(
        self,
        version: str,
        by: str,
        *,
        forced: bool = False,
        reason: str | None = None,
        rolled_back: bool = False,
    ) -> None:
        """Point the champion alias at ``version`` and record the change on the registered model
        (``champion.history``: which version, when, by whom, which it replaced, whether gates
        were overridden and why). A version's own promotion tags are overwritten when it is
        promoted again, and a replaced champion recorded nothing: the registry could not say
        which version served when (an ML engineer's walkthrough of a roll-back)."""
        previous = self.alias_version(CHAMPION)
        # read before the alias moves: an unrecorded change that made ``previous`` champion is
        # kept in the history written below
        history = self.champion_history()
        self.set_alias(CHAMPION, version)
        if previous not in (None, version) and self.alias_version(CHALLENGER) == previous:
            # A replaced champion waits for nothing: left as challenger after a roll-back, a bare
            # `segments compare` and the explorer's Compare page offered the version just rolled
            # back from as the candidate for promotion.
            self.delete_alias(CHALLENGER)
        entry: dict[str, object] = {
            "version": version,
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "by": by,
            "replaced": previous,
            "forced": forced,
            # a roll-back undoes the change before it: the next roll-back goes further back
            # (``pipelines.lifecycle.rolled_back_to``), not to the version just left
            **({"rolled_back": True} if rolled_back else {}),
            # cut: the tag holds 5,000 characters, and two reasons of 2,600 pushed every earlier
            # change out of it (training reads it to give rolled-back ids back); the version's
            # own `promotion.reason` tag keeps the whole text
            **({"reason": shortened(reason, HISTORY_REASON_CHARACTERS)} if reason else {}),
        }
        history = [*history, entry]
        text = json.dumps(history, separators=(",", ":"))
        while len(text) > MAX_TAG_CHARACTERS and len(history) > 1:
            history = history[1:]  # the oldest go first: a tag holds 5,000 characters
            text = json.dumps(history, separators=(",", ":"))
        self.set_model_tags({CHAMPION_HISTORY: text})

    def set_alias(self, alias: str, version: str) -> None:
        with _asking(f"model {self.model_name} version {version}"):
            self.client.set_registered_model_alias(self.model_name, alias, version)

    def delete_alias(self, alias: str) -> None:
        with _asking(f"alias {alias}"):
            self.client.delete_registered_model_alias(self.model_name, alias)

    def set_version_tags(self, version: str, tags: Mapping[str, object]) -> None:
        with _asking(f"model {self.model_name} version {version}"):
            for key, value in tags.items():
                self.client.set_model_version_tag(self.model_name, version, key, str(value))

    def delete_version_tag(self, version: str, key: str) -> None:
        with _asking(f"model {self.model_name} version {version}"):
            self.client.delete_model_version_tag(self.model_name, version, key)

    def version_tag_values(self, key: str) -> list[str]:
        """``key``'s value on every registered version that has it (one search)."""
        with _asking(f"model {self.model_name}"):
            found = self.client.search_model_versions(f"name = '{self.model_name}'")
        return [version.tags[key] for version in found if key in (version.tags or {})]

    def refuse_unfinished(self, version: str) -> None:
        """Refuse, in one line, a version whose training did not finish (``UNFINISHED_TAG``)."""
        said = self.version_tags(version).get(UNFINISHED_TAG)
        if said is not None:
            raise SegmentsError(
                f"version {version}'s training did not finish ({said}): it cannot be compared "
                "or promoted; `segments train` again"
            )

    def set_model_tags(self, tags: Mapping[str, object]) -> None:
        with _asking(f"model {self.model_name}"):
            for key, value in tags.items():
                self.client.set_registered_model_tag(self.model_name, key, str(value))

    def delete_model_tags(self, keys: Collection[str]) -> None:
        present = self.model_tags()
        with _asking(f"model {self.model_name}"):
            for key in keys:
                if key in present:
                    self.client.delete_registered_model_tag(self.model_name, key)

    def log_file(self, run_id: str, path: Path, folder: str | None = None) -> None:
        """One file as a run artifact (under ``folder``)."""
        self.client.log_artifact(run_id, str(path), folder)

    @contextmanager
    def run(self, existing: str | None = None, name: str | None = None) -> Iterator[str]:
        """A new run in the experiment, named ``name`` (MLflow draws a random one without);
        yields its id, ends it FINISHED (FAILED on error, KILLED when interrupted).

        ``existing``: log into a run someone else started (``mlflow run``), who also ends it.
        """
        if existing is not None:
            # a launcher's run lacks this package's version (and the git commit, launched
            # outside a checkout): the tags MLflow did not set are added. Not the host and
            # process tags: the launcher's process, not this one, ends the run.
            logged = self.client.get_run(existing).data.tags
            missing = [RunTag(k, v) for k, v in _run_context_tags().items() if k not in logged]
            if missing:
                self.client.log_batch(existing, tags=missing)
            yield existing
            return
        self._end_abandoned_runs()
        tags = _run_context_tags() | {
            HOST_TAG: socket.gethostname(),
            PROCESS_TAG: process_identity(),
        }
        run_id = self.client.create_run(self._experiment(), tags=tags, run_name=name).info.run_id
        try:
            yield run_id
        except KeyboardInterrupt:  # Ctrl-C, or a SIGTERM the CLI turns into one
            self.client.set_terminated(run_id, RunStatus.to_string(RunStatus.KILLED))
            raise
        except BaseException:
            self.client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))
            raise
        self.client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))

    def _end_abandoned_runs(self) -> None:
        """End as KILLED the runs this machine started whose process is gone. A run killed with
        SIGKILL (the OOM killer, `kill -9`, a container stopped) cannot end itself, and MLflow
        listed it RUNNING for ever: an engineer could not tell it from a retrain in progress."""
        running = self.client.search_runs(
            [self._experiment()],
            f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` = '{socket.gethostname()}'",
        )
        for run in running:
            started_by = run.data.tags.get(PROCESS_TAG)
            if not started_by or not process_gone(started_by):
                continue
            # read again: a run that ended on its own since the search keeps its status
            if self.client.get_run(run.info.run_id).info.status != "RUNNING":
                continue
            self.client.set_tag(run.info.run_id, ENDED_BY_TAG, "its process was found gone")
            self.client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.KILLED))

    def log_training_input(self, run_id: str, sample: pd.DataFrame, name: str) -> None:
        """Record ``sample`` (the training customers the model keeps) as the run's training
        dataset: MLflow's dataset lineage (name, digest, schema, row count), so an engineer can
        tell which data produced a version and whether two versions saw the same."""
        import mlflow.data
        from mlflow.entities import DatasetInput, InputTag

        with warnings.catch_warnings():  # integer columns: a schema hint about serving, not this
            warnings.simplefilter("ignore")
            entity = mlflow.data.from_pandas(sample, name=name)._to_mlflow_entity()
        context = InputTag("mlflow.data.context", "training")
        self.client.log_inputs(run_id, datasets=[DatasetInput(entity, [context])])

    def log_values(
        self,
        run_id: str,
        params: Mapping[str, object] | None = None,
        metrics: Mapping[str, float] | None = None,
        step: int = 0,
    ) -> None:
        """Params (as text) and metrics (at ``step``, now) in as few requests as MLflow allows.

        A param the run already holds with another value is logged as ``<name>.resolved``:
        ``mlflow run`` logs the entry point's parameters as typed ("2026-06-30"), MLflow refuses
        a second value for a param, and the run failed on the value read from it
        ("2026-07-01T00:00:00", the end of that day)."""
        now = int(time.time() * 1000)
        logged = self.client.get_run(run_id).data.params if params else {}
        entries = []
        for name, value in (params or {}).items():
            text = str(value)
            if logged.get(name, text) != text:
                if f"{name}{RESOLVED}" in (params or {}):
                    continue  # its resolved value is among these params already
                name = f"{name}{RESOLVED}"
            entries.append(Param(name, text))
        self.client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), now, step) for k, v in (metrics or {}).items()],
            params=entries,
        )

    def log_artifacts(self, run_id: str, folder: Path) -> None:
        """Every file of ``folder`` as a run artifact."""
        self.client.log_artifacts(run_id, str(folder))

    def register_version(
        self,
        run_id: str,
        model: SegmentModel,
        model_dir: Path,
        hashes: Mapping[str, str],
        example: pd.DataFrame,
        tags: Mapping[str, str] | None = None,
    ) -> str:
        """Log ``model_dir`` (written by ``save_model``) as the run's pyfunc model and register it
        as a new version, created with the sha256 tags loading checks against (and ``tags``);
        return it."""
        logged = self.client.create_logged_model(
            self._experiment(), name="model", source_run_id=run_id
        )
        self.client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
        metadata = Model(
            artifact_path=logged.artifact_location,
            model_uuid=logged.model_id,
            run_id=run_id,
            model_id=logged.model_id,
        )
        with tempfile.TemporaryDirectory() as tmp:
            pyfunc_dir = Path(tmp) / "model"
            _write_pyfunc(pyfunc_dir, model, model_dir, example, metadata)
            self.client.log_model_artifacts(logged.model_id, str(pyfunc_dir))
        self.client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
        self._ensure_registered_model()
        # The tags come with the version, so no reader ever sees it without its hashes.
        created = self.client.create_model_version(
            self.model_name,
            logged.artifact_location,
            run_id=run_id,
            model_id=logged.model_id,
            description=version_description(model),
            tags={
                **(tags or {}),
                **{SHA_TAG_PREFIX + name: digest for name, digest in hashes.items()},
            },
        )
        return str(created.version)

    def _experiment(self) -> str:
        if self._experiment_id is None:
            name = self.config.experiment_name
            found = self.client.get_experiment_by_name(name)
            self._experiment_id = (
                found.experiment_id
                if found is not None
                else self.client.create_experiment(
                    name, artifact_location=self.config.artifact_location
                )
            )
        return self._experiment_id

    def _ensure_registered_model(self) -> None:
        try:
            self.client.create_registered_model(self.model_name)
        except MlflowException as error:
            if error.error_code not in EXISTING_CODES:
                raise


def _write_pyfunc(
    folder: Path, model: SegmentModel, model_dir: Path, example: pd.DataFrame, metadata: Model
) -> None:
    with warnings.catch_warnings():
        # MLflow warns about pickling the wrapper class: it holds no state (the files are loaded
        # and verified in load_context), so only this package's own class is pickled.
        warnings.simplefilter("ignore")
        save_pyfunc(
            str(folder),
            python_model=SegmentsPyfunc(),
            artifacts={MODEL_DIR: str(model_dir)},
            signature=infer_signature(example, model.assign(example)),
            input_example=example,
            mlflow_model=metadata,
            pip_requirements=pinned_requirements(),
        )


# What loading a version needs. Named here because MLflow's inference reloads the model in a
# child process to watch its imports: 9 s of CPU for a 3,000-customer model, and it lists whatever
# the training process had imported (pyspark, matplotlib) rather than what scoring needs.
MODEL_DISTRIBUTIONS = (
    "customer-segments",
    "cloudpickle",
    "hdbscan",
    "joblib",
    "numpy",
    "pandas",
    "scikit-learn",
    "scipy",
    "shap",
    "threadpoolctl",
)


def pinned_requirements() -> list[str]:
    """``MODEL_DISTRIBUTIONS`` at the versions installed here (those not installed left out)."""
    pinned = []
    for name in MODEL_DISTRIBUTIONS:
        try:
            pinned.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return pinned
