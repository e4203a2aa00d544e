"""Request bodies and errors of the OpenAI-compatible API (reasonkd.serve.server, reasonkd.serve.completions).

Unknown fields are accepted and ignored (clients send `user`, `presence_penalty`, ...);
a validation failure becomes a 400 naming the field (`param`), as OpenAI does.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field


class APIError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ):
        super().__init__(message)
        self.status, self.body = status, {"message": message, "type": type, "param": param, "code": code}


class _Part(BaseModel):
    type: Literal["text"]
    text: str


class _ImageURL(BaseModel):
    model_config = ConfigDict(extra="allow")  # `detail` and the like are accepted and ignored
    url: str


class _ImagePart(BaseModel):
    """An image, answered from its OCR text (reasonkd.ocr); only inline data: URLs are read."""

    type: Literal["image_url"]
    image_url: _ImageURL


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Union[str, list[Annotated[Union[_Part, _ImagePart], Field(discriminator="type")]], None] = None


class _Common(BaseModel):
    model_config = ConfigDict(extra="allow")  # unknown OpenAI fields (user, presence_penalty, ...) are ignored
    model: str
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    n: int = Field(1, ge=1, le=8)
    stream: bool = False
    stream_options: dict | None = None
    stop: Union[str, list[str], None] = None
    seed: int | None = None


class ChatRequest(_Common):
    messages: list[_Message] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    return_tokens_as_token_ids: bool = False  # vLLM: log-prob entries name tokens 'token_id:N'


class CompletionRequest(_Common):
    prompt: Union[str, list[str], list[int], list[list[int]]]
    max_tokens: int | None = Field(16, ge=1)  # OpenAI's default for /v1/completions
    logprobs: int | None = Field(None, ge=0, le=20)
    echo: bool = False
    prompt_logprobs: int | None = Field(None, ge=0, le=20)  # vLLM: top-k log-probs at every prompt position
    return_tokens_as_token_ids: bool = False  # vLLM: log-prob entries name tokens 'token_id:N'


def error_response(status: int, body: dict) -> JSONResponse:
    return JSONResponse({"error": body}, status_code=status)
