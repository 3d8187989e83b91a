"""Studies from a PACS over DICOMweb: search (QIDO-RS), retrieve into a local cache (WADO-RS), send back (STOW-RS).

The server is always the user's choice (``--server URL`` or the viewer's
"Open from server…"); nothing here contacts anything by itself.

Retrieval fetches a study's MG instances one by one into a hidden
``.partial-…`` folder of the cache and renames it into place when the last
one is on disk, so a study folder in the cache is always complete: a
transfer that fails or is cancelled leaves nothing behind, and the next open
of the same study reads the cache without contacting the server. The cache
is ``$NAFV_CACHE/dicomweb`` (default ``~/.cache/nafv/dicomweb``), one folder
per server and one per study; the loaders open it like any DICOM folder.
The cache is kept under ``NAFV_CACHE_MAX_GB`` (default 20): after each
retrieval the least recently opened studies are removed, never the one just
opened (see :func:`evict`).

Credentials come from the environment (``NAFV_DICOMWEB_TOKEN`` for a bearer
token, or ``NAFV_DICOMWEB_USER`` / ``NAFV_DICOMWEB_PASSWORD`` for basic
auth) or from the viewer's sign-in prompt, never from the command line, and
are never put in a message or a log. Every failure a user can meet (server
down, access refused, no mammograms in the study, a transfer cut) is one
:class:`ServerError` with a message saying what to do.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional
from urllib.parse import urlsplit

from core_model.domain.errors import StudyLoadError
from core_model.domain.jobs import CancelToken, ProgressCallback, report

TOKEN_ENV = "NAFV_DICOMWEB_TOKEN"
USER_ENV = "NAFV_DICOMWEB_USER"
PASSWORD_ENV = "NAFV_DICOMWEB_PASSWORD"
# (connect, read) seconds: a PACS that does not answer is said so, not waited on forever.
TIMEOUT_S = (10.0, 120.0)
SEARCH_LIMIT = 200
CACHE_MAX_ENV = "NAFV_CACHE_MAX_GB"
# 20 GB: a CEM study (8 images of ~3000 x 2400 pixels, 16 bit, uncompressed) is ~120 MB on disk, so this
# keeps the last ~150 studies opened (days of a reading list) on any workstation disk, yet stops the cache
# from filling a disk over months without anyone noticing.
CACHE_MAX_GB_DEFAULT = 20.0
PARTIAL_PREFIX = ".partial-"
_UID = re.compile(r"[0-9]+(?:\.[0-9]+)*")
_DATE = re.compile(r"\d{8}")


class ServerError(StudyLoadError):
    """The PACS could not be reached, refused access, or did not give what was asked."""


class AuthRequired(ServerError):
    """The PACS asked for credentials (HTTP 401) or refused the ones given (401/403)."""


def cache_root() -> Path:
    """Where retrieved studies are kept: ``$NAFV_CACHE/dicomweb`` or ``~/.cache/nafv/dicomweb``.

    The same user cache as :func:`core_model.models.pretrained.cache_dir`
    (not imported from there: that module loads torch).
    """
    return Path(os.environ.get("NAFV_CACHE") or Path.home() / ".cache" / "nafv") / "dicomweb"


def cache_limit_bytes(environ: Optional[dict] = None) -> int:
    """The cache's size limit: ``NAFV_CACHE_MAX_GB`` (decimal gigabytes, 0 keeps only the study opened)."""
    text = (os.environ if environ is None else environ).get(CACHE_MAX_ENV, "").strip()
    if not text:
        return int(CACHE_MAX_GB_DEFAULT * 1e9)
    try:
        gb = float(text)
    except ValueError:
        gb = float("nan")
    if not gb >= 0 or gb == float("inf"):
        raise ServerError(f"{CACHE_MAX_ENV}={text!r} is not a size: give the cache's limit in gigabytes, e.g. 20")
    return int(gb * 1e9)


@dataclass(frozen=True)
class Credentials:
    """A bearer token, or a user name and password. Never shown: ``repr`` hides the secret."""

    user: str = ""
    password: str = field(default="", repr=False)
    token: str = field(default="", repr=False)

    @classmethod
    def from_env(cls, environ: Optional[dict] = None) -> Optional["Credentials"]:
        env = os.environ if environ is None else environ
        token = env.get(TOKEN_ENV, "").strip()
        if token:
            return cls(token=token)
        user = env.get(USER_ENV, "")
        if user:
            return cls(user=user, password=env.get(PASSWORD_ENV, ""))
        return None

    def __bool__(self) -> bool:
        return bool(self.token or self.user)


@dataclass(frozen=True)
class StudyHit:
    """One study a search found, in the words a reading list shows."""

    study_uid: str
    patient_id: str = ""
    patient_name: str = ""
    study_date: str = ""  # YYYYMMDD as the server gave it
    description: str = ""
    modalities: tuple[str, ...] = ()
    n_instances: Optional[int] = None


def _session():
    """A requests session that sends QIDO wildcards as ``*`` and ``?``, not percent-encoded.

    RFC 3986 allows both in a query; Orthanc matches ``%2A`` literally, so
    ``PatientName=%2Asmith%2A`` would find nobody.
    """
    import requests

    class WildcardSession(requests.Session):
        def prepare_request(self, request):
            prepared = super().prepare_request(request)
            base, sep, query = (prepared.url or "").partition("?")
            if sep:
                prepared.url = base + sep + query.replace("%2A", "*").replace("%3F", "?")
            return prepared

    return WildcardSession()


def _bearer(token: str):
    import requests

    class BearerAuth(requests.auth.AuthBase):
        def __call__(self, r):
            r.headers["Authorization"] = f"Bearer {token}"
            return r

        def __repr__(self) -> str:  # never the token
            return "BearerAuth(<hidden>)"

    return BearerAuth()


def normalise_url(url: str) -> str:
    """The DICOMweb base URL without a trailing slash; refuses credentials written into it."""
    url = (url or "").strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ServerError(f"{url or '(empty)'} is not a server address; give one like http://pacs:8042/dicom-web")
    if parts.username or parts.password:
        # A password on the command line lands in the shell history and the process list.
        raise ServerError(f"do not put a user name or password in the server address; set {USER_ENV} and "
                          f"{PASSWORD_ENV} (or {TOKEN_ENV}) in the environment instead")
    return url.rstrip("/")


def parse_date(text: str) -> str:
    """A study-date filter as DICOM wants it: ``YYYYMMDD`` or a range ``YYYYMMDD-YYYYMMDD`` (either end open).

    Accepts ``2024-03-05`` too. An empty text is no filter.
    """
    text = (text or "").strip()
    if not text:
        return ""
    compact = re.sub(r"\b(\d{4})[-./](\d{2})[-./](\d{2})\b", r"\1\2\3", text)  # ISO dates first, then ranges
    m = re.fullmatch(r"(\d{8})?\s*(-)?\s*(\d{8})?", compact)
    if m is None or not (m.group(1) or m.group(3)) or (m.group(3) and not m.group(2)):
        raise ServerError(f"study date {text!r}: give YYYYMMDD (or 2024-03-05), or a range like 20240101-20240331")
    return f"{m.group(1) or ''}{m.group(2) or ''}{m.group(3) or ''}"


def _value(item: dict, tag: str) -> str:
    v = (item.get(tag) or {}).get("Value") or []
    if not v:
        return ""
    first = v[0]
    if isinstance(first, dict):  # PN in DICOM JSON: {"Alphabetic": "Doe^Jane"}
        return str(first.get("Alphabetic", ""))
    return str(first)


def _values(item: dict, tag: str) -> tuple[str, ...]:
    return tuple(str(x) for x in (item.get(tag) or {}).get("Value") or [] if not isinstance(x, dict))


class DicomWebServer:
    """One DICOMweb service (``url`` is its base, e.g. ``http://pacs:8042/dicom-web``)."""

    def __init__(self, url: str, credentials: Optional[Credentials] = None, cache: Optional[Path] = None,
                 timeout: tuple[float, float] = TIMEOUT_S):
        self.url = normalise_url(url)
        self.credentials = credentials if credentials is not None else Credentials.from_env()
        self._cache = Path(cache) if cache is not None else None
        self.timeout = timeout
        self._client = None

    # -- connection and errors ------------------------------------------------------------------
    def client(self):
        if self._client is None:
            from dicomweb_client.api import DICOMwebClient

            session = _session()
            c = self.credentials
            if c and c.token:
                session.auth = _bearer(c.token)
            elif c:
                session.auth = (c.user, c.password)
            self._client = DICOMwebClient(self.url, session=session, timeout=self.timeout)
            # Retrying 503s with exponential back-off would leave the reader waiting without a word.
            self._client.set_http_retry_params(retry=False)
        return self._client

    def _error(self, err: BaseException, doing: str) -> ServerError:
        """The one message a user sees for a failed request (never the credentials, never a traceback)."""
        import requests

        where = f"the PACS at {self.url}"
        if isinstance(err, requests.exceptions.HTTPError) and err.response is not None:
            code = err.response.status_code
            c = self.credentials
            given = "token" if c and c.token else "user name and password"
            check = TOKEN_ENV if c and c.token else f"{USER_ENV} and {PASSWORD_ENV}"
            if code == 401:
                if c:
                    return AuthRequired(f"{where} did not accept the {given} given: not authorised (HTTP 401) while "
                                        f"{doing}; check the {given} ({check})")
                return AuthRequired(f"{where} asks for a user name and password (HTTP 401): set {USER_ENV} and "
                                    f"{PASSWORD_ENV}, or {TOKEN_ENV}, in the environment (the viewer asks for them)")
            if code == 403:
                # Known but not allowed (Orthanc: an authorisation filter); a bearer token may be wrong or expired.
                return AuthRequired(f"{where} did not let this {'token' if c and c.token else 'user'} in: not "
                                    f"authorised (HTTP 403) while {doing}; check the {given} ({check}), or ask "
                                    "the PACS administrator for access")
            if code == 404:
                return ServerError(f"{where} has no DICOMweb service or no such study (HTTP 404) while {doing}; "
                                   "check the address (Orthanc: http://HOST:8042/dicom-web)")
            return ServerError(f"{where} answered HTTP {code} ({err.response.reason or 'error'}) while {doing}")
        if isinstance(err, requests.exceptions.Timeout):
            return ServerError(f"{where} did not answer within {self.timeout[1]:.0f} s while {doing}")
        if isinstance(err, requests.exceptions.ConnectionError):
            reason = "connection refused" if "refused" in str(err).lower() else "no connection"
            return ServerError(f"cannot reach {where} ({reason}): is the server running and the address right?")
        if isinstance(err, requests.exceptions.RequestException):
            return ServerError(f"{where}: the connection failed while {doing} ({type(err).__name__})")
        return ServerError(f"{where} sent an answer that could not be read while {doing}")

    def _call(self, doing: str, fn, *args, **kwargs):
        import requests

        try:
            return fn(*args, **kwargs)
        except (requests.exceptions.RequestException, ValueError, KeyError) as err:
            raise self._error(err, doing) from None

    # -- QIDO-RS --------------------------------------------------------------------------------
    def search_studies(self, patient_id: str = "", patient_name: str = "", study_date: str = "",
                       limit: int = SEARCH_LIMIT) -> list[StudyHit]:
        """Mammography studies (ModalitiesInStudy MG) matching all the filters given; newest first.

        A name without wildcards matches anywhere in the name (``smith`` finds
        ``Smith^Jane``); a patient id matches exactly unless it holds ``*`` or ``?``.
        """
        filters: dict[str, str] = {"ModalitiesInStudy": "MG"}
        if patient_id.strip():
            filters["PatientID"] = patient_id.strip()
        name = patient_name.strip()
        if name:
            filters["PatientName"] = name if any(c in name for c in "*?") else f"*{name}*"
        date = parse_date(study_date)
        if date:
            filters["StudyDate"] = date
        fields = ["PatientID", "PatientName", "StudyDate", "StudyDescription", "ModalitiesInStudy",
                  "NumberOfStudyRelatedInstances"]
        found = self._call("searching for studies", self.client().search_for_studies,
                           search_filters=filters, fields=fields, limit=limit)
        hits = []
        for item in found:
            n = _value(item, "00201208")
            hits.append(StudyHit(study_uid=_value(item, "0020000D"), patient_id=_value(item, "00100020"),
                                 patient_name=_value(item, "00100010"), study_date=_value(item, "00080020"),
                                 description=_value(item, "00081030"), modalities=_values(item, "00080061"),
                                 n_instances=int(n) if n.isdigit() else None))
        hits = [h for h in hits if h.study_uid]
        hits.sort(key=lambda h: h.study_date, reverse=True)
        return hits

    def mg_instances(self, study_uid: str) -> list[tuple[str, str]]:
        """(series UID, SOP instance UID) of the study's MG images; a clear error when there are none."""
        study_uid = _check_uid(study_uid)
        doing = f"listing the images of study {study_uid}"
        found = self._call(doing, self.client().search_for_instances, study_instance_uid=study_uid,
                           search_filters={"Modality": "MG"},
                           fields=["SeriesInstanceUID", "SOPInstanceUID", "Modality"])
        # Servers that ignore an instance-level Modality filter still say each instance's modality.
        pairs = [(_value(i, "0020000E"), _value(i, "00080018")) for i in found
                 if _value(i, "00080060") in ("", "MG")]
        pairs = [p for p in pairs if p[0] and p[1]]
        if pairs:
            return sorted(set(pairs))
        series = self._call(doing, self.client().search_for_series, study_instance_uid=study_uid,
                            fields=["Modality"])
        if not series:
            raise ServerError(f"the PACS at {self.url} has no study {study_uid}")
        kinds = sorted({_value(s, "00080060") or "unknown" for s in series})
        raise ServerError(f"study {study_uid} on the PACS holds no mammograms (MG images), only {', '.join(kinds)}")

    # -- WADO-RS into the cache -----------------------------------------------------------------
    @property
    def cache_base(self) -> Path:
        """The whole cache (all servers): what the size limit applies to."""
        return self._cache if self._cache is not None else cache_root()

    @property
    def cache_dir(self) -> Path:
        """This server's folder in the cache (a hash of its address: no host names in folder names)."""
        return self.cache_base / hashlib.sha256(self.url.encode("utf-8")).hexdigest()[:16]

    def cached_study(self, study_uid: str) -> Optional[Path]:
        """The complete cached folder of ``study_uid``, or None when it has not been retrieved."""
        folder = self.cache_dir / _check_uid(study_uid)
        return folder if folder.is_dir() else None

    def retrieve_study(self, study_uid: str, progress: Optional[ProgressCallback] = None,
                       cancel: Optional[CancelToken] = None, keep: Iterable[Path] = ()) -> Path:
        """The study's MG images as a local folder (from the cache when already retrieved).

        Written whole or not at all: a failure or a cancel removes what was
        fetched. ``progress(stage, fraction)`` is called after each image. Making room in the cache
        afterwards never removes this study nor those in ``keep`` (a batch's earlier retrievals).
        """
        study_uid = _check_uid(study_uid)
        limit = cache_limit_bytes()  # a bad setting is said before anything is fetched
        done = self.cached_study(study_uid)
        if done is not None:
            _touch(done)  # recently used: the last to be evicted
            report(progress, "opened from the local copy", 1.0)
            return done
        report(progress, "asking the PACS for the study", 0.0)
        pairs = self.mg_instances(study_uid)
        if cancel is not None:
            cancel.check()
        self.cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # patient images: this user's eyes only
        _remove_stale_partials(self.cache_dir)
        stage = self.cache_dir / f"{PARTIAL_PREFIX}{study_uid}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        stage.mkdir()
        try:
            self._fetch(study_uid, pairs, stage, progress, cancel)
            target = self.cache_dir / study_uid
            try:
                stage.rename(target)
            except OSError:
                if not target.is_dir():  # not another process finishing the same study first
                    raise
                shutil.rmtree(stage, ignore_errors=True)
            _touch(target)
            evict(self.cache_base, limit, keep={target, *keep})
            return target
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise

    def _fetch(self, study_uid: str, pairs: list[tuple[str, str]], stage: Path,
               progress: Optional[ProgressCallback], cancel: Optional[CancelToken]) -> None:
        import requests

        n = len(pairs)
        for i, (series_uid, sop_uid) in enumerate(pairs):
            if cancel is not None:
                cancel.check()
            try:
                ds = self.client().retrieve_instance(study_uid, series_uid, sop_uid)
            except requests.exceptions.HTTPError as err:
                raise self._error(err, f"retrieving image {i + 1} of {n}") from None
            except (requests.exceptions.RequestException, ValueError) as err:
                if isinstance(err, requests.exceptions.ConnectionError) and i == 0 and "refused" in str(err).lower():
                    raise self._error(err, "retrieving the study") from None
                raise ServerError(f"the transfer from the PACS at {self.url} was cut after {i} of {n} images "
                                  f"({type(err).__name__}); nothing was kept, open the study again") from None
            if not _complete(ds, sop_uid):
                raise ServerError(f"the transfer from the PACS at {self.url} was cut after {i} of {n} images "
                                  "(an image arrived incomplete); nothing was kept, open the study again")
            try:
                ds.save_as(stage / f"{_check_uid(sop_uid)}.dcm", enforce_file_format=True)
            except OSError as err:
                raise ServerError(f"cannot write the retrieved study into {self.cache_dir} "
                                  f"({err.strerror or err})") from None
            report(progress, f"retrieving image {i + 1} of {n}", (i + 1) / n)

    # -- STOW-RS ------------------------------------------------------------------------------------
    def store(self, paths: Iterable[str | Path]) -> int:
        """Send DICOM files (a SEG, a report) to the PACS; returns how many it accepted."""
        import pydicom

        paths = [Path(p) for p in paths]
        if not paths:
            return 0
        datasets = [pydicom.dcmread(p) for p in paths]
        answer = self._call(f"sending {len(paths)} object(s)", self.client().store_instances, datasets)
        failed = list(getattr(answer, "FailedSOPSequence", None) or [])
        if failed:
            reasons = sorted({str(getattr(f, "FailureReason", "?")) for f in failed})
            raise ServerError(f"the PACS at {self.url} refused {len(failed)} of {len(paths)} object(s) "
                              f"(failure reason {', '.join(reasons)})")
        return len(list(getattr(answer, "ReferencedSOPSequence", None) or [])) or len(paths)


def _complete(ds, sop_uid: str) -> bool:
    """Whether a retrieved instance is the one asked for and, when uncompressed, holds all its pixels.

    A response cut without a Content-Length still parses (the multipart
    reader yields what arrived), so a short Pixel Data is the sign.
    """
    if str(getattr(ds, "SOPInstanceUID", "")) != sop_uid:
        return False
    if "PixelData" not in ds or ds.file_meta.get("TransferSyntaxUID") is None or ds.file_meta.TransferSyntaxUID.is_compressed:
        return True
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    need = int(ds.Rows) * int(ds.Columns) * int(getattr(ds, "SamplesPerPixel", 1) or 1) * frames
    need = need * int(ds.BitsAllocated) // 8 if int(ds.BitsAllocated) >= 8 else (need + 7) // 8
    return len(ds.PixelData) >= need


def _check_uid(uid: str) -> str:
    uid = (uid or "").strip()
    if not _UID.fullmatch(uid) or len(uid) > 64:
        raise ServerError(f"{uid or '(empty)'} is not a DICOM UID (digits and dots, like 1.2.840.113619.2.5)")
    return uid


def _touch(folder: Path) -> None:
    """Mark a cached study as just used (its folder's mtime is the cache's use clock)."""
    now = time.time_ns()  # given explicitly: the file system's own clock may tick only every few ms
    try:
        os.utime(folder, ns=(now, now))
    except OSError:  # a read-only cache still opens; it is just not reordered
        pass


def _size(folder: Path) -> int:
    total = 0
    for f in folder.iterdir():
        try:
            total += f.stat().st_size
        except OSError:
            pass
    return total


def evict(base: Path, limit: int, keep: Optional[Path] | Iterable[Path] = None) -> list[Path]:
    """Remove the least recently used studies of the cache ``base`` (all servers) until it holds at most
    ``limit`` bytes; ``keep`` (the study being opened, or every study of a batch still to be analysed)
    is never removed, even when it alone is larger.

    Each study is first renamed to a ``.partial-`` name, so a study folder is never seen half removed
    (and one left by a killed process is cleared like any stale transfer). Returns the folders removed.
    """
    studies = []
    for server in base.iterdir() if base.is_dir() else []:
        if not server.is_dir() or server.name.startswith("."):
            continue
        for study in server.iterdir():
            if study.is_dir() and _UID.fullmatch(study.name):
                try:
                    studies.append((study.stat().st_mtime_ns, study, _size(study)))
                except OSError:  # removed meanwhile by another process
                    pass
    kept = {keep} if isinstance(keep, Path) else set(keep or ())
    total = sum(size for _, _, size in studies)
    removed = []
    for _, study, size in sorted(studies, key=lambda t: t[0]):
        if total <= limit:
            break
        if study in kept:
            continue
        doomed = study.with_name(f"{PARTIAL_PREFIX}evict-{study.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        try:
            study.rename(doomed)
        except OSError:  # removed or renamed by another process meanwhile: leave it
            continue
        shutil.rmtree(doomed, ignore_errors=True)
        total -= size
        removed.append(study)
    return removed


def _remove_stale_partials(folder: Path) -> None:
    """Drop ``.partial-`` folders of processes that no longer run (killed mid-transfer)."""
    for p in folder.glob(f"{PARTIAL_PREFIX}*"):
        m = re.search(r"-(\d+)-[0-9a-f]{8}$", p.name)
        if m is None or _alive(int(m.group(1))):
            continue
        shutil.rmtree(p, ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid() or os.name == "nt":  # Windows: os.kill would end the process, so keep the folder
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True
