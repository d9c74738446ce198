"""``camcount serve`` as a real process on loopback, called with the official
``tritonclient[http]`` client (a client this project did not write).

One server (API keys, small limits) serves every test in this module; a second one
with a self-signed certificate checks TLS. Each bad request is followed by good ones:
the server keeps serving.
"""

from __future__ import annotations

import base64
import http.client
import json
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import pytest
import tritonclient.http as triton
import yaml
from tritonclient.utils import InferenceServerException

from pipeline.config import REPO_ROOT, Settings, parse_settings, shared_dir
from pipeline.inference.registry import ModelRegistry
from pipeline.detections import Detections

KEY = "test-key-0123456789abcdef"
LIMITED_KEY = "limited-key-0123456789abcdef"


def auth() -> dict[str, str]:
    """Fresh headers per call: tritonclient adds its own keys to the dict it is given."""
    return {"Authorization": f"Bearer {KEY}"}

MODEL, VERSION = "yolox-nano", "1"
MAX_BODY = 4 * 1024 * 1024
MAX_SIDE = 2000
PERSON = b"person"


class Server:
    """``python -m pipeline.cli serve --port 0`` with stderr (logs, audit lines) in a file."""

    def __init__(self, config: dict, workdir: Path) -> None:
        self.config_path = workdir / "camcount.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = workdir / "serve.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", "-v", "-c", str(self.config_path), "serve", "--port", "0"],
            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=self._log, text=True)
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in self.proc.stdout], daemon=True).start()
        try:
            line = lines.get(timeout=120)
        except queue.Empty:
            line = ""
        match = re.search(r"listening on (https?)://([\d.]+):(\d+)", line)
        if match is None:
            self.stop()
            pytest.fail(f"camcount serve did not start: {line!r}\n{self.log_path.read_text()[-3000:]}")
        self.scheme, self.host, self.port = match.group(1), match.group(2), int(match.group(3))
        self.url = f"{self.host}:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        """A plain HTTP request, for what tritonclient does not expose (headers, raw JSON)."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            conn.close()


def server_config(**serving: object) -> dict:
    return {
        "models": {"dir": str(shared_dir() / "models")},
        "inference": {"session": {"intra_op_num_threads": 2}},
        "serving": {
            "follow_assignment": False,  # see test_unversioned_requests_follow_promote_and_rollback
            "api_keys": [
                {"id": "tester", "key": KEY, "rate_limit_per_s": 1000, "rate_limit_burst": 1000},
                {"id": "limited", "key": LIMITED_KEY, "rate_limit_per_s": 0.1, "rate_limit_burst": 2},
            ],
            "max_body_bytes": MAX_BODY,
            "max_width": MAX_SIDE,
            "max_height": MAX_SIDE,
            "max_batch": 8,
            "max_wait_ms": 20,
            **serving,
        },
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(server_config(), tmp_path_factory.mktemp("serve"))
    yield srv
    srv.stop()


@pytest.fixture()
def client(server: Server) -> Iterator[triton.InferenceServerClient]:
    with triton.InferenceServerClient(server.url, network_timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def frame100() -> np.ndarray:
    """Frame 100 of the pets09 clip, BGR, decoded with PyAV (people walking)."""
    import av

    path = shared_dir() / "data" / "videos" / "pets09_s2l1_pedestrians.avi"
    if not path.is_file():
        pytest.fail(f"{path} not found; set CAMCOUNT_SHARED to the shared folder")
    with av.open(str(path)) as container:
        for number, frame in enumerate(container.decode(video=0)):
            if number == 100:
                return frame.to_ndarray(format="bgr24")
    pytest.fail("pets09 has fewer than 101 frames")


@pytest.fixture(scope="module")
def jpeg100(frame100: np.ndarray) -> bytes:
    """Frame 100 JPEG-encoded, as the ingest worker puts frames on Kafka."""
    return cv2.imencode(".jpg", frame100, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


@pytest.fixture(scope="module")
def stream_detector():
    """The detector exactly as an inference worker builds it from the same settings."""
    from pipeline.inference.detector import load_detector
    from pipeline.inference.registry import registry_from_settings

    settings: Settings = parse_settings(server_config(), "<test>")
    cfg = settings.inference
    return load_detector(registry_from_settings(settings), MODEL, VERSION, cfg.session, cfg.decode)


def reference(detector, image: np.ndarray) -> tuple[np.ndarray, Detections]:
    """What the stream path gives for ``image``: detect_batch, boxes scaled to pixels."""
    dets = detector.detect_batch([image])[0]
    height, width = image.shape[:2]
    return dets.xyxy * np.array([width, height, width, height], np.float32), dets


def image_input(data: bytes, binary: bool = True) -> triton.InferInput:
    tensor = triton.InferInput("image", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([data], dtype=object), binary_data=binary)
    return tensor


def bgr_input(image: np.ndarray) -> triton.InferInput:
    tensor = triton.InferInput("image_bgr", list(image.shape), "UINT8")
    tensor.set_data_from_numpy(image, binary_data=True)
    return tensor


def assert_matches(result, boxes: np.ndarray, dets: Detections) -> None:
    assert len(dets) > 0
    np.testing.assert_array_equal(result.as_numpy("class_ids"), dets.class_ids)
    np.testing.assert_allclose(result.as_numpy("scores"), dets.scores, atol=1e-4)
    np.testing.assert_allclose(result.as_numpy("boxes"), boxes, atol=0.05)


def test_health_and_server_metadata(client, server) -> None:
    assert client.is_server_live() and client.is_server_ready()  # probes need no key
    meta = client.get_server_metadata(headers=auth())
    assert meta["name"] == "camcount" and "binary_tensor_data" in meta["extensions"]
    assert client.is_model_ready(MODEL, headers=auth())
    assert client.is_model_ready(MODEL, VERSION, headers=auth())
    assert not client.is_model_ready(MODEL, "99", headers=auth())
    assert not client.is_model_ready("no-such-model", headers=auth())


def test_model_metadata_describes_inputs_and_outputs(client) -> None:
    for version in ("", VERSION):
        meta = client.get_model_metadata(MODEL, version, headers=auth())
        assert meta["name"] == MODEL and VERSION in meta["versions"]
        assert meta["versions"] == sorted(k.split(":", 1)[1] for k in ModelRegistry.load().keys()
                                          if k.startswith(MODEL + ":"))
        inputs = {t["name"]: (t["datatype"], t["shape"]) for t in meta["inputs"]}
        assert inputs == {"image": ("BYTES", [1]), "image_bgr": ("UINT8", [-1, -1, 3])}
        outputs = {t["name"]: (t["datatype"], t["shape"]) for t in meta["outputs"]}
        assert outputs == {"boxes": ("FP32", [-1, 4]), "scores": ("FP32", [-1]),
                           "class_ids": ("INT32", [-1]), "class_names": ("BYTES", [-1])}
        assert "BGR" in meta["parameters"]["inputs"]


def test_jpeg_gives_people_and_the_stream_paths_boxes(client, jpeg100, stream_detector) -> None:
    from pipeline.inference.preprocess import decode_image

    result = client.infer(MODEL, [image_input(jpeg100)], headers=auth())
    assert result.get_response()["model_version"] == VERSION
    names = result.as_numpy("class_names")
    scores = result.as_numpy("scores")
    assert sum(1 for n, s in zip(names, scores) if n == PERSON and s >= 0.5) >= 5
    assert_matches(result, *reference(stream_detector, decode_image(jpeg100)))


def test_raw_bgr_tensor_on_a_named_version(client, frame100, stream_detector) -> None:
    outputs = [triton.InferRequestedOutput(name, binary_data=False) for name in ("boxes", "scores", "class_ids")]
    result = client.infer(MODEL, [bgr_input(frame100)], model_version=VERSION, outputs=outputs, headers=auth())
    assert [o["name"] for o in result.get_response()["outputs"]] == ["boxes", "scores", "class_ids"]
    assert all("data" in o for o in result.get_response()["outputs"])  # JSON, as asked
    assert_matches(result, *reference(stream_detector, frame100))


def test_json_request_with_base64_image(server, jpeg100, stream_detector) -> None:
    from pipeline.inference.preprocess import decode_image

    body = {"id": "req-1", "inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                                       "data": [base64.b64encode(jpeg100).decode()]}]}
    status, _, raw = server.request("POST", f"/v2/models/{MODEL}/infer", json.dumps(body).encode(),
                                    {**auth(), "Content-Type": "application/json"})
    assert status == 200, raw
    response = json.loads(raw)
    assert response["id"] == "req-1" and response["model_name"] == MODEL
    out = {o["name"]: o for o in response["outputs"]}
    boxes, dets = reference(stream_detector, decode_image(jpeg100))
    assert out["boxes"]["shape"] == [len(dets), 4]
    np.testing.assert_allclose(np.array(out["boxes"]["data"], np.float32).reshape(-1, 4), boxes, atol=0.05)
    assert out["class_names"]["data"].count("person") >= 5


def test_compressed_request(client, jpeg100) -> None:
    result = client.infer(MODEL, [image_input(jpeg100)], headers=auth(), request_compression_algorithm="gzip")
    assert PERSON in set(result.as_numpy("class_names"))


def png_header(width: int, height: int) -> bytes:
    """A PNG signature and IHDR declaring a size (the data after it is irrelevant)."""
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + b"\x08\x02\x00\x00\x00"
    return b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\x0dIHDR" + ihdr + b"\x00" * 64


def fp32_image() -> triton.InferInput:
    tensor = triton.InferInput("image", [1], "FP32")
    return tensor.set_data_from_numpy(np.zeros(1, np.float32))


# (inputs factory, headers, expected status, words the message must contain)
BAD_REQUESTS = {
    # an encoded image sent as a float tensor
    "wrong datatype": (lambda j, f: [fp32_image()], auth(), 400, ["must be BYTES", "FP32"]),
    # four channels where BGR has three
    "wrong shape": (lambda j, f: [bgr_input(np.zeros((8, 8, 4), np.uint8))], auth(), 400, ["[H, W, 3]", "[8, 8, 4]"]),
    # two images in one request
    "two images": (lambda j, f: [_two_images(j)], auth(), 400, ["shape [1]", "one image per request"]),
    # a JPEG header followed by garbage
    "corrupt jpeg": (lambda j, f: [image_input(j[:200] + b"\x00" * 500)], auth(), 400, ["could not be decoded"]),
    # not an image at all
    "not an image": (lambda j, f: [image_input(b"GIF89a" + b"\x00" * 100)], auth(), 400, ["not a JPEG or PNG"]),
    # a PNG declaring 5000x5000 pixels: refused before decoding
    "too many pixels": (lambda j, f: [image_input(png_header(5000, 5000))], auth(), 413, ["5000x5000", "limit"]),
    # raw pixels over the width limit
    "too wide": (lambda j, f: [bgr_input(np.zeros((10, MAX_SIDE + 1, 3), np.uint8))], auth(), 413, ["2001x10"]),
    # a body over max_body_bytes
    "oversized body": (lambda j, f: [image_input(j + b"\x00" * MAX_BODY)], auth(), 413, ["exceeds the limit"]),
    # no credentials
    "missing token": (lambda j, f: [image_input(j)], {}, 401, ["missing credentials"]),
    # a key that is not configured
    "wrong token": (lambda j, f: [image_input(j)], {"Authorization": "Bearer not-a-key-00000000"}, 401,
                    ["invalid API key"]),
    # the key in X-API-Key, but wrong
    "wrong api key header": (lambda j, f: [image_input(j)], {"X-API-Key": KEY + "x"}, 401, ["invalid API key"]),
}


def _two_images(jpeg: bytes) -> triton.InferInput:
    tensor = triton.InferInput("image", [2], "BYTES")
    return tensor.set_data_from_numpy(np.array([jpeg, jpeg], dtype=object), binary_data=True)


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_requests_get_a_clear_error_and_the_server_keeps_serving(case, client, jpeg100, frame100) -> None:
    make_inputs, headers, status, words = BAD_REQUESTS[case]
    with pytest.raises(InferenceServerException) as info:
        client.infer(MODEL, make_inputs(jpeg100, frame100), headers=dict(headers))
    assert info.value.status() == str(status), info.value.message()
    for word in words:
        assert word in info.value.message()
    result = client.infer(MODEL, [image_input(jpeg100)], headers=auth())
    assert PERSON in set(result.as_numpy("class_names"))


def test_unknown_model_version_and_output(client, jpeg100) -> None:
    cases = [
        (lambda: client.infer("no-such-model", [image_input(jpeg100)], headers=auth()), "404", "unknown model"),
        (lambda: client.infer(MODEL, [image_input(jpeg100)], model_version="7", headers=auth()), "404",
         "unknown version '7'"),
        (lambda: client.infer(MODEL, [image_input(jpeg100)], headers=auth(),
                              outputs=[triton.InferRequestedOutput("masks")]), "400", "unknown output 'masks'"),
    ]
    for call, status, words in cases:
        with pytest.raises(InferenceServerException) as info:
            call()
        assert info.value.status() == status and words in info.value.message()


def test_too_many_requests_get_429_with_retry_after(server, client, jpeg100) -> None:
    def headers() -> dict[str, str]:
        return {"X-API-Key": LIMITED_KEY}

    assert client.get_model_metadata(MODEL, headers=headers())["name"] == MODEL  # burst of 2
    assert client.get_model_metadata(MODEL, headers=headers())["name"] == MODEL
    with pytest.raises(InferenceServerException) as info:
        client.infer(MODEL, [image_input(jpeg100)], headers=headers())
    assert info.value.status() == "429" and "rate limit exceeded for limited" in info.value.message()
    status, response_headers, body = server.request("GET", f"/v2/models/{MODEL}", headers=headers())
    assert status == 429 and int(response_headers["retry-after"]) >= 1
    assert "rate limit" in json.loads(body)["error"]
    # other clients have their own buckets
    assert client.get_model_metadata(MODEL, headers=auth())["name"] == MODEL
    assert re.search(r"audit: who=limited .* status=429", server.log_path.read_text())


def batch_counts(metrics_text: str) -> tuple[float, float]:
    """(batches, batches of one image) from the batch-size histogram at /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    total = ones = 0.0  # no batch yet
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.labels.get("model") != MODEL or sample.labels.get("version") != VERSION:
                continue
            if sample.name == "camcount_serving_batch_size_count":
                total = sample.value
            elif sample.name == "camcount_serving_batch_size_bucket" and float(sample.labels["le"]) == 1.0:
                ones = sample.value
    return total, ones


def test_concurrent_clients_are_served_in_batches(server, jpeg100, stream_detector) -> None:
    from pipeline.inference.preprocess import decode_image

    boxes, dets = reference(stream_detector, decode_image(jpeg100))
    status, _, before = server.request("GET", "/metrics", headers=auth())
    assert status == 200
    batches_before, ones_before = batch_counts(before.decode())  # earlier tests' batches

    def worker(_: int) -> list[np.ndarray]:
        with triton.InferenceServerClient(server.url, network_timeout=120) as c:
            return [c.infer(MODEL, [image_input(jpeg100)], headers=auth()).as_numpy("boxes") for _ in range(4)]

    with ThreadPoolExecutor(16) as pool:
        results = [b for boxes_list in pool.map(worker, range(16)) for b in boxes_list]
    assert len(results) == 64
    for got in results:
        np.testing.assert_allclose(got, boxes, atol=0.05)
    _, _, after = server.request("GET", "/metrics", headers=auth())
    batches, ones = batch_counts(after.decode())
    multi = (batches - batches_before) - (ones - ones_before)
    assert multi > 0, f"no batch of more than one image among {batches - batches_before}"
    assert re.search(r'camcount_serving_requests_total\{endpoint="infer",model="yolox-nano",.*status="200"',
                     after.decode())


def test_metrics_need_a_key_and_audit_lines_never_hold_the_key(server, jpeg100) -> None:
    status, _, body = server.request("GET", "/metrics")
    assert status == 401 and b"missing credentials" in body
    status, _, _ = server.request("GET", f"/v2/models/{MODEL}", headers={"X-API-Key": KEY})
    assert status == 200
    status, _, _ = server.request("POST", f"/v2/models/{MODEL}/infer", jpeg100, headers=auth())
    assert status == 400  # a JPEG is not a JSON request
    expected = [
        lambda line: "who=- " in line and "path=/metrics" in line and "status=401" in line,
        lambda line: "who=tester" in line and "method=GET" in line and "model=yolox-nano version=1 status=200" in line,
        lambda line: "who=tester" in line and "method=POST" in line and "status=400" in line
        and f"bytes_in={len(jpeg100)}" in line,
    ]
    deadline = time.monotonic() + 10  # the server's log handler writes after the response
    while True:
        log = server.log_path.read_text()
        audit = [line for line in log.splitlines() if "pipeline.serving.audit" in line]
        if all(any(match(line) for line in audit) for match in expected) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    for match in expected:
        assert any(match(line) for line in audit), audit
    assert KEY not in log and LIMITED_KEY not in log
    assert max(len(line) for line in audit) < 400  # no image content


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("serve-tls")
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("the TLS test needs the openssl command (apt-get install openssl)")
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    srv = Server(server_config(tls_cert_file=str(cert), tls_key_file=str(key)), workdir)
    srv.cert = cert
    yield srv
    srv.stop()


def test_tls_when_a_certificate_is_configured(tls_server, jpeg100) -> None:
    assert tls_server.scheme == "https"
    # verified against the self-signed certificate (not insecure=True)
    with triton.InferenceServerClient(tls_server.url, ssl=True, ssl_options={"ca_certs": str(tls_server.cert)}) as c:
        assert c.is_server_ready()
        result = c.infer(MODEL, [image_input(jpeg100)], headers=auth())
        assert PERSON in set(result.as_numpy("class_names"))
    with pytest.raises((http.client.HTTPException, ConnectionError, OSError)):
        tls_server.request("GET", "/v2/health/live")  # plain HTTP is not served


def test_refuses_an_open_endpoint_off_loopback_and_a_taken_port(server, tmp_path: Path) -> None:
    config = tmp_path / "camcount.yaml"
    config.write_text(yaml.safe_dump({"models": {"dir": str(shared_dir() / "models")}}))
    serve = [sys.executable, "-m", "pipeline.cli", "-c", str(config), "serve"]
    result = subprocess.run([*serve, "--host", "0.0.0.0"], capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert result.returncode == 2 and "serving.api_keys is empty" in result.stderr
    result = subprocess.run([*serve, "--port", str(server.port)], capture_output=True, text=True, timeout=120,
                            cwd=REPO_ROOT)
    assert result.returncode == 1 and f"could not serve on 127.0.0.1:{server.port}" in result.stderr


def test_unversioned_requests_follow_promote_and_rollback(kafka_settings: Settings, jpeg100: bytes,
                                                         tmp_path: Path) -> None:
    """The endpoint reads model-control like the inference workers: promote and rollback apply."""
    from pipeline.shadow.assignment import promote, rollback
    from pipeline.shadow.control import change, now_ms

    config = server_config(follow_assignment=True) | {
        "kafka": {"bootstrap_servers": kafka_settings.kafka.bootstrap_servers},
        "topics": {"prefix": kafka_settings.topics.prefix}}
    srv = Server(config, tmp_path)
    try:
        with triton.InferenceServerClient(srv.url, network_timeout=60) as client:
            def version() -> str:
                return client.infer(MODEL, [image_input(jpeg100)], headers=auth()).get_response()["model_version"]

            def becomes(expected: str) -> bool:
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    if version() == expected:
                        return True
                    time.sleep(0.2)
                return False

            assert version() == VERSION
            change(kafka_settings, lambda a: promote(a, f"{MODEL}:1-b1", "test", now_ms()))
            assert becomes("1-b1")
            change(kafka_settings, lambda a: rollback(a, "test", now_ms()))
            assert becomes(VERSION)
    finally:
        srv.stop()
