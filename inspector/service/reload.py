"""Hot reload: the station follows the champion and the manuals recorded in the database.

A watcher thread polls every few seconds. When another model was promoted (by a retraining run,
`inspector models promote` or the dashboard), it loads that model beside the running one and
hands it to the worker, which switches between two batches: no request is dropped, and every
verdict records the model that made it. When a manual got a new version (edited or onboarded
in the dashboard), the engine uses it from the next batch on: a new product or defect type
needs text, not a restart.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from inspector.engine import Engine
from inspector.errors import InspectorError
from inspector.manual import Manual
from inspector.recorder import Recorder
from inspector.service.worker import InspectionWorker
from inspector.store.files import ImageStore
from inspector.store.monitoring import champion
from inspector.store.queries import latest_manuals

log = logging.getLogger(__name__)


class ChampionWatcher:
    def __init__(
        self,
        worker: InspectionWorker,
        sessions: sessionmaker[Session],
        images: ImageStore,
        load_engine,  # Path -> Engine
        interval_s: float = 5.0,
    ) -> None:
        self.worker, self.sessions, self.images, self.load_engine = worker, sessions, images, load_engine
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="champion-watcher", daemon=True)
        self.failed: dict[str, str] = {}  # artifact path -> why it could not be loaded (not retried)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def sync_manuals(self, engine: Engine) -> list[str]:
        """Give ``engine`` every manual whose newest stored version it does not use. -> products."""
        with self.sessions() as s:
            latest = latest_manuals(s)
        changed = []
        for product, (sha, text) in latest.items():
            current = engine.manuals.get(product)
            if (isinstance(current, Manual) and current.sha256 == sha) or engine.manual_texts.get(product) == sha:
                continue  # in use, or refused already (an unusable manual is reported once, not every poll)
            try:
                engine.set_manual_text(product, text, f"manual of {product} (database)")
            except InspectorError as exc:  # an unusable manual: image-only verdicts, flagged
                log.error("manual of %s unusable (%s): image-only verdicts", product, exc)
            changed.append(product)
        return changed

    def check(self) -> bool:
        """Follow manual edits; load the champion if it is not the model being served.
        -> whether a model switch was queued."""
        for product in self.sync_manuals(self.worker.engine):
            log.info("manual of %s updated from the database", product)
        with self.sessions() as s:
            champ = champion(s)
        if champ is None:
            return False
        path = Path(champ.artifact_path).resolve()
        current = self.worker.pending_model_dir() or self.worker.engine.model_dir.resolve()
        if path == current or str(path) in self.failed:
            return False
        try:
            engine: Engine = self.load_engine(path)
            self.sync_manuals(engine)
            share = self.worker.recorder.spot_check_share
            recorder = Recorder(self.sessions, self.images, engine, model_id=champ.id, spot_check_share=share)
        except Exception as exc:  # noqa: BLE001 - a bad artifact must not stop the line: keep the old model
            self.failed[str(path)] = f"{type(exc).__name__}: {exc}"
            log.error("champion %s could not be loaded (%s); still serving %s", path, exc, current)
            return False
        self.worker.replace_model(engine, recorder)
        log.info("switching to champion %s", engine.version)
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.check()
            except Exception:
                log.exception("champion check failed; trying again")
