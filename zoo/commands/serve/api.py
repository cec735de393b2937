"""The LitServe API: uploads decoded one by one, run as one batch, answered one by one.

LitServe fails every request of a batch when one of them raises (Lightning-AI/LitServe#340), so a bad upload
is carried through the batch as its reason and answered alone with its 4xx; the good requests batched with it
get their classes."""


import json
import logging
import math
import re
import signal

import litserve as ls
import numpy as np
from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.requests import Request as StarletteRequest
from starlette.types import ASGIApp, Receive, Scope, Send

from zoo.commands.serve import MAX_MEGAPIXELS
from zoo.commands.serve.decode import BadUpload, from_bytes
from zoo.commands.serve.model import load

FIELD = "image"
# a malformed form is answered with a 400 that says why; the parser's own warning would be a bare line in the log
logging.getLogger("python_multipart").setLevel(logging.ERROR)


class Rejected:
    def __init__(self, status: int, reason: str) -> None:
        self.status, self.reason = status, reason


class ClassifierAPI(ls.LitAPI):  # no "from __future__ import annotations": LitServe reads the Request type
    def __init__(self, spec: dict, source, top_k: int = 1, threads: int | None = None,
                 max_megapixels: float = MAX_MEGAPIXELS, **batching) -> None:
        super().__init__(**batching)
        self.contract, self.source, self.top_k, self.threads = spec, source, top_k, threads
        self.max_megapixels = max_megapixels
        self.classes = spec["classes"]

    def setup(self, device) -> None:
        # Ctrl-C reaches every process of the group; the server stops this worker itself (no trace from it)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        # built here, in the inference process: an ONNX Runtime session does not travel between processes
        self.model = load(self.source, self.contract, self.threads)

    def decode_request(self, request: Request):
        upload = request.get(FIELD)
        k = request.get("top_k", self.top_k)
        try:
            k = int(k)
            if k < 1:
                raise ValueError
        except (TypeError, ValueError):
            shown = repr(k) if len(repr(k)) <= 40 else f"{repr(k)[:40]}... ({len(str(k))} characters)"
            return Rejected(400, f"top_k={shown}: give a whole number >= 1")
        try:
            image = from_bytes(upload.file.read(), self.contract, _short(upload.filename or ""), self.max_megapixels)
            return image, min(k, len(self.classes))
        except BadUpload as e:
            return Rejected(e.status, str(e))

    def batch(self, inputs):
        return inputs

    def predict(self, inputs):
        good = [i for i, x in enumerate(inputs) if not isinstance(x, Rejected)]
        if good:
            probabilities = self.model(np.stack([inputs[i][0] for i in good])).astype(np.float32, copy=False)
            for row, i in zip(probabilities, good):
                inputs[i] = (row, inputs[i][1])
        return inputs

    def unbatch(self, outputs):
        return outputs

    def encode_response(self, output):
        if isinstance(output, Rejected):
            return JSONResponse({"error": output.reason}, status_code=output.status)
        probabilities, k = output
        index = np.argsort(-probabilities, kind="stable")[:k]  # as torch.topk: the most probable first
        return {"predictions": [{"class": self.classes[c], "probability": p}
                                for c, p in zip(index.tolist(), probabilities[index].tolist())]}


def _short(name: str, most: int = 80) -> str:
    """A client's file name as a message shows it: whole up to ``most`` characters."""
    return name if len(name) <= most else f"{name[:most - 20]}...{name[-17:]}"


async def _reply(send: Send, status: int, reason: str) -> None:
    body = json.dumps({"error": reason}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class UploadCheck:
    """Before a request reaches LitServe: the size limit, a multipart form with an ``image`` file in it, each
    refused with a 4xx and one line (LitServe would answer a malformed form with a 500)."""

    def __init__(self, app: ASGIApp, max_bytes: int, path: str = "/predict") -> None:
        self.app, self.max_bytes, self.path = app, max_bytes, path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        limit = f"{self.max_bytes / 2**20:g} MB"
        headers = dict(scope["headers"])
        kind = headers.get(b"content-type", b"").decode("latin-1")
        if not kind.startswith("multipart/form-data"):
            return await _reply(send, 415, f"send the image as a form field named {FIELD}: "
                                           f"curl -F {FIELD}=@photo.jpg http://HOST:PORT{self.path}")
        size = headers.get(b"content-length", b"")
        if size.isdigit() and int(size) > self.max_bytes:
            return await _reply(send, 413, f"the upload is {int(size) / 2**20:.1f} MB; the limit is {limit} "
                                           "(zoo serve --max_upload_mb)")
        chunks, total = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            total += len(chunks[-1])
            if total > self.max_bytes:
                return await _reply(send, 413, f"the upload is over the limit of {limit} (zoo serve --max_upload_mb)")
            if not message.get("more_body"):
                break
        body = b"".join(chunks)

        def replay():
            sent = False

            async def receive_again():
                nonlocal sent
                if sent:
                    return {"type": "http.disconnect"}
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return receive_again

        try:
            form = await StarletteRequest(scope, replay()).form()
            upload = form.get(FIELD)
            ok = upload is not None and not isinstance(upload, str)
            await form.close()
        except Exception as e:  # noqa: BLE001 (a malformed form)
            reason = str(getattr(e, "detail", e))
            if _long_filename(body):
                reason = f"a part's filename is over {MAX_FILENAME} characters; send the file under a shorter name"
            return await _reply(send, 400, f"not a readable multipart form ({reason})")
        if not ok:
            return await _reply(send, 400, f"no file in the form field {FIELD!r}: "
                                           f"curl -F {FIELD}=@photo.jpg http://HOST:PORT{self.path}")
        await self.app(scope, replay(), send)


#: python-multipart gives up on a part header (its filename) longer than this; the server says so
MAX_FILENAME = 4000


def _long_filename(body: bytes) -> bool:
    """Whether a part's header names a file of more than MAX_FILENAME characters (what makes the form unreadable)."""
    return any(len(m) > MAX_FILENAME for m in re.findall(rb'filename="([^"\r\n]*)', body[:2**20]))


def mb(value: float) -> int:
    return int(math.ceil(value * 2**20))
