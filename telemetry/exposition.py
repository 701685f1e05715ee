"""What a Prometheus scrape of one mesh process returns: its own registry, or, with several worker
processes, every worker's files merged (prometheus_client multiprocess mode)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest, multiprocess
from prometheus_client import start_http_server as _start_http_server
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# prometheus_client leaves these two untyped; typed here once instead of ignoring each call
_merge_worker_files: Callable[..., object] = multiprocess.MultiProcessCollector
_mark_process_dead: Callable[..., None] = multiprocess.mark_process_dead


class Exposition:
    """What a scrape returns: this process's registry, or every worker's files in multiprocess mode."""

    def __init__(self, registry: CollectorRegistry, multiprocess_dir: Path | None = None) -> None:
        self.registry = registry
        self.multiprocess_dir = multiprocess_dir

    def scrape_registry(self) -> CollectorRegistry:
        if self.multiprocess_dir is None:
            return self.registry
        merged = CollectorRegistry()
        _merge_worker_files(merged, path=str(self.multiprocess_dir))
        return merged

    def render(self) -> tuple[bytes, str]:
        """(body, content type) for a `/prometheus` handler."""
        return generate_latest(self.scrape_registry()), CONTENT_TYPE_LATEST

    def worker_exited(self, pid: int) -> None:
        """The supervisor calls this when a worker dies, so its live gauges stop counting."""
        if self.multiprocess_dir is not None:
            _mark_process_dead(pid, str(self.multiprocess_dir))

    def serve(self, port: int, host: str = "127.0.0.1") -> int:
        """Serve the scrape on a background thread (any path answers); the bound port."""
        server, _ = _start_http_server(port, addr=host, registry=self.scrape_registry())
        return int(server.server_port)
