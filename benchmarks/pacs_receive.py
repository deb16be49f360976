"""DICOM listener throughput: a real Orthanc pushes a 500-slice CT series to ``m3ret listen``'s storage SCP.

The series is made from one real 512 x 512 CT slice (pydicom's ``693_UNCR.dcm``, explicit VR little endian):
500 slices with new study/series/SOP UIDs, positions 1 mm apart, pixels shifted per slice. They are uploaded to
Orthanc (not timed), then Orthanc C-STOREs the study to our listener (``POST /modalities/m3ret/store``) and we
measure, with the bundled model:

- instances/s received and stored (first to last instance written into the inbox, atomically, fsync'ed);
- last instance -> searchable: from the last instance stored until the series is indexed (settle time + the
  association's release + reading, embedding and writing the 500-slice volume), then checked by a search with
  the series as query (it must find itself first).

Run: ``python -m benchmarks.pacs_receive [--quick] [--slices N] [--settle S]`` (needs Orthanc and pynetdicom;
``--quick``: 100 slices). Results: printed as markdown and written to ``benchmarks/results/pacs_receive.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "pacs_receive.json"
TEMPLATE = "693_UNCR.dcm"


def run(n_slices: int, settle_s: float, workdir: Path) -> dict[str, object]:
    from pydicom.data import get_testdata_file

    from engine.library import Library
    from engine.pacs.storage_scp import StorageSCP
    from engine.search import search_by_path
    from tests.engine.pacs.orthanc_server import Orthanc, free_port, write_series_from_slice

    files = write_series_from_slice(Path(get_testdata_file(TEMPLATE)), n_slices, workdir / "series")
    port = free_port()
    stamps: list[float] = []
    indexed = threading.Event()
    indexed_at: list[float] = []
    with Orthanc(workdir / "orthanc", {"m3ret": ("M3RET", port)}) as orthanc, \
            Library.open(workdir / "lib") as library:
        started = time.perf_counter()
        study = orthanc.upload(files)[0]["ParentStudy"]
        upload_s = time.perf_counter() - started
        library.encoder  # noqa: B018 (load the model before the clock starts, as a running listener has)
        scp = StorageSCP(library, "M3RET", port, ["ORTHANC"], settle_s, bind="127.0.0.1",
                         on_instance=lambda stored, ae: stamps.append(time.perf_counter()),
                         on_indexed=lambda dirs, report: (indexed_at.append(time.perf_counter()), indexed.set()))
        with scp:
            push_started = time.perf_counter()
            job = orthanc.store_to("m3ret", [study], timeout=3600)
            push_s = time.perf_counter() - push_started
            if not indexed.wait(3600):
                raise RuntimeError("the series was not indexed within an hour")
        report = scp.completion.reports[-1]
        (record,) = library.catalog.list_cases()
        _case, results = search_by_path(library, Path(record.path), k=1)
        assert results and results[0].case_id == record.id, "the received series does not find itself"
    receive_s = stamps[-1] - stamps[0]
    return {
        "slices": n_slices, "slice_shape": [512, 512], "bytes_per_instance": files[0].stat().st_size,
        "received": len(stamps), "failed_at_orthanc": job.get("FailedInstancesCount"),
        "instances_per_s": round((len(stamps) - 1) / receive_s, 1) if receive_s > 0 else None,
        "push_s": round(push_s, 2), "settle_s": settle_s,
        "last_instance_to_searchable_s": round(indexed_at[0] - stamps[-1], 2),
        "indexing_s": round(report.seconds, 2), "case_shape": list(record.shape_tuple),
        "orthanc_upload_s": round(upload_s, 2),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 slices")
    parser.add_argument("--slices", type=int, default=500)
    parser.add_argument("--settle", type=float, default=2.0, metavar="S", help="listener settle time (s)")
    args = parser.parse_args(argv)
    n_slices = 100 if args.quick else args.slices
    with tempfile.TemporaryDirectory(prefix="m3ret-pacs-bench-") as tmp:
        result = run(n_slices, args.settle, Path(tmp))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    print("| slices | instances/s received | push (s) | settle (s) | last instance -> searchable (s) | "
          "indexing (s) |")
    print("|---:|---:|---:|---:|---:|---:|")
    print(f"| {result['slices']} | {result['instances_per_s']} | {result['push_s']} | {result['settle_s']} | "
          f"{result['last_instance_to_searchable_s']} | {result['indexing_s']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
