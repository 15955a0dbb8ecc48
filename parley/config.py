"""Agent configuration: the one schema shared by YAML files, the CLI, the API and the workers."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from uuid import UUID

import yaml
from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from parley.errors import ConfigError
from parley.refs import ONE_REF, ref_problem

TOOL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]{0,63}$")
LANGUAGE = re.compile(r"^[a-z]{2}(-[A-Z]{2})?$")


class _Strict(BaseModel):
    # Unknown keys are almost always typos ("sytem_prompt"); refuse them instead of ignoring.
    model_config = ConfigDict(extra="forbid", frozen=True)


class STTChoice(_Strict):
    provider: Literal["auto", "local", "groq", "deepgram"] = "auto"
    model: str | None = Field(None, description="Provider model; None picks the provider default.")
    options: dict[str, Any] = Field(default_factory=dict)


def _key_ref(v: str | None) -> str | None:
    if v is not None and not ONE_REF.match(v):
        raise ValueError(
            "must be a reference such as ${secrets.MY_KEY}, not a literal key "
            "(fix: store the key with PUT /v1/secrets/MY_KEY)"
        )
    return v


class LLMChoice(_Strict):
    provider: Literal["auto", "local", "groq", "openai"] = "auto"
    model: str | None = None
    base_url: AnyHttpUrl | None = Field(
        None, description="OpenAI-compatible endpoint (Ollama, vLLM, llama.cpp server)."
    )
    api_key: str | None = Field(
        None,
        max_length=80,
        description="Key for this agent's own base_url: a reference ${secrets.NAME} (never a "
        "literal key). The server's own provider keys only go to the server's endpoints.",
    )
    temperature: float = Field(0.6, ge=0.0, le=2.0)
    max_tokens: int = Field(200, ge=1, le=4096)
    options: dict[str, Any] = Field(default_factory=dict)

    _api_key = field_validator("api_key")(_key_ref)


class TTSChoice(_Strict):
    provider: Literal["auto", "local", "openai"] = "auto"
    voice: str | None = Field(None, description="Provider voice; None picks the provider default.")
    model: str | None = Field(None, description="Provider model; None picks the provider default.")
    base_url: AnyHttpUrl | None = Field(
        None, description="OpenAI-compatible /v1/audio/speech server (Kokoro-FastAPI, Speaches)."
    )
    api_key: str | None = Field(
        None,
        max_length=80,
        description="Key for this agent's own base_url: a reference ${secrets.NAME} (never a "
        "literal key). The server's own provider keys only go to the server's endpoints.",
    )
    options: dict[str, Any] = Field(default_factory=dict)

    _api_key = field_validator("api_key")(_key_ref)


class TurnTaking(_Strict):
    vad_stop_secs: float = Field(
        0.4, ge=0.1, le=3.0, description="Silence that ends the user's speech."
    )
    smart_turn: bool = Field(
        False, description="Smart Turn v3 decides end of turn (adds ~80 ms of CPU per turn)."
    )
    interruptions: bool = Field(True, description="The user may barge in while the agent talks.")
    min_words_to_interrupt: int = Field(
        0, ge=0, le=20, description="Words the user must say before the agent yields; 0 = VAD."
    )


class EndCallTool(_Strict):
    type: Literal["end_call"] = "end_call"
    name: str = "end_call"
    description: str = Field(
        "End the call after saying goodbye, when the conversation is over.", max_length=1024
    )


MAX_TOOLS = 32
MAX_SCHEMA_BYTES = 8192
MAX_SCHEMA_DEPTH = 6
MAX_HEADERS = 20
MAX_HEADER_NAME = 64
MAX_HEADER_VALUE = 2048


def _depth(v: Any) -> int:
    if isinstance(v, dict):
        return 1 + max((_depth(x) for x in v.values()), default=0)
    if isinstance(v, list):
        return 1 + max((_depth(x) for x in v), default=0)
    return 0


class HttpTool(_Strict):
    type: Literal["http"] = "http"
    name: str = Field(max_length=64)
    description: str = Field(min_length=1, max_length=1024)
    parameters: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object", "properties": {}, "required": []},
        description="JSON Schema of the arguments (an object schema).",
    )
    url: AnyHttpUrl
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    headers: dict[str, str] = Field(
        default_factory=dict,
        max_length=MAX_HEADERS,
        description="Values may reference the organization's secrets as ${secrets.NAME}.",
    )
    timeout_secs: float = Field(5.0, gt=0, le=30)

    @field_validator("headers")
    @classmethod
    def _headers(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            if not 0 < len(name) <= MAX_HEADER_NAME:
                shown = name[:20] + ("..." if len(name) > 20 else "")
                raise ValueError(
                    f"header name {shown!r} is {len(name)} characters; names are "
                    f"1-{MAX_HEADER_NAME} (fix: shorten it)"
                )
            if len(value) > MAX_HEADER_VALUE:
                raise ValueError(
                    f"header {name}: the value is {len(value)} characters, at most "
                    f"{MAX_HEADER_VALUE} (fix: shorten it)"
                )
            if problem := ref_problem(value):
                raise ValueError(f"header {name}: {problem}")
        return v

    @field_validator("parameters")
    @classmethod
    def _object_schema(cls, v: dict[str, Any]) -> dict[str, Any]:
        # Sent to the LLM with every request, and walked by every runtime: bounded.
        size = len(json.dumps(v))
        if size > MAX_SCHEMA_BYTES:
            raise ValueError(
                f"is {size} bytes of JSON, at most {MAX_SCHEMA_BYTES} "
                "(fix: shorten descriptions or drop parameters)"
            )
        if (depth := _depth(v)) > MAX_SCHEMA_DEPTH:
            raise ValueError(
                f"nests {depth} levels of JSON, at most {MAX_SCHEMA_DEPTH} "
                "(fix: flatten nested objects)"
            )
        if v.get("type") != "object" or not isinstance(v.get("properties", {}), dict):
            raise ValueError(
                'must be a JSON Schema object: {"type": "object", "properties": {...}}'
            )
        missing = [r for r in v.get("required", []) if r not in v.get("properties", {})]
        if missing:
            raise ValueError(f"lists required parameters that are not in properties: {missing}")
        return v


Tool = Annotated[EndCallTool | HttpTool, Field(discriminator="type")]


class KnowledgeChoice(_Strict):
    """Answer from knowledge bases: retrieved for every user turn, or through a lookup tool."""

    base_ids: list[UUID] = Field(min_length=1, max_length=10)
    mode: Literal["per_turn", "tool"] = "per_turn"
    top_k: int = Field(4, ge=1, le=20)
    min_score: float = Field(0.25, ge=0.0, le=1.0, description="Cosine similarity floor.")


class AgentConfig(_Strict):
    name: str = Field(min_length=1, max_length=80)
    system_prompt: str = Field(min_length=1, max_length=20_000)
    greeting: str | None = Field(None, max_length=500, description="Spoken first; None = wait.")
    language: str = Field("en", description="BCP-47 language, e.g. en or en-US.")
    stt: STTChoice = STTChoice()
    llm: LLMChoice = LLMChoice()
    tts: TTSChoice = TTSChoice()
    turns: TurnTaking = TurnTaking()
    tools: list[Tool] = Field(default_factory=list, max_length=MAX_TOOLS)
    knowledge: KnowledgeChoice | None = None
    pipeline: str = Field(
        "voice",
        max_length=200,
        pattern=r"^[A-Za-z_][\w.]*(:[A-Za-z_]\w*)?$",
        description=(
            "Pipeline graph by name: 'voice', 'voice_fillers' or one the operator registered "
            "(PARLEY_PIPELINES, the parley.pipelines entry points); an agent file run by its "
            "author may also give 'package.module:function'."
        ),
    )
    max_duration_secs: int = Field(1800, ge=10, le=4 * 3600)
    idle_timeout_secs: int = Field(30, ge=5, le=600)

    # Never serialised. ``trusted``: an agent file run by its own author (``parley talk``), which
    # may read that author's environment (``${env.NAME}``) and reach their private network;
    # configs stored through the API are untrusted. ``secrets``: the owning organization's
    # secret values, bound by the runtime for ``${secrets.NAME}`` references.
    _trusted: bool = PrivateAttr(False)
    _secrets: Mapping[str, str] = PrivateAttr(default_factory=dict)

    @property
    def trusted(self) -> bool:
        return self._trusted

    @property
    def secrets(self) -> Mapping[str, str]:
        return self._secrets

    def as_trusted(self) -> AgentConfig:
        out = self.model_copy()
        out._trusted = True
        return out

    def with_secrets(self, values: Mapping[str, str]) -> AgentConfig:
        out = self.model_copy()
        out._secrets = dict(values)
        return out

    @field_validator("language")
    @classmethod
    def _language(cls, v: str) -> str:
        if not LANGUAGE.match(v):
            raise ValueError("use a BCP-47 code such as 'en' or 'en-US'")
        return v

    @model_validator(mode="after")
    def _tools_unique(self) -> AgentConfig:
        names = [t.name for t in self.tools]
        for n in names:
            if not TOOL_NAME.match(n):
                raise ValueError(
                    f"tool name {n!r} must be letters, digits or _ (max 64), starting with a letter"
                )
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"tool names must be unique; rename the duplicates {dupes}")
        return self


_HINTS = {
    "missing": "add this field",
    "extra_forbidden": "remove it or check its spelling",
    "literal_error": "use one of the allowed values",
    "url_parsing": "give a full URL such as https://example.com/path",
    "url_scheme": "use an http:// or https:// URL",
    "string_too_short": "it may not be empty",
    "greater_than_equal": "raise the value",
    "less_than_equal": "lower the value",
    "union_tag_invalid": "set type to 'end_call' or 'http'",
    "union_tag_not_found": "add type: end_call or type: http",
    "string_pattern_mismatch": "see the field's description for the allowed form",
    "string_too_long": "shorten it",
    "too_long": "remove some",
}


def format_validation_error(err: ValidationError, source: str = "agent config") -> str:
    """One line per problem: the dotted field path, what is wrong, and how to fix it."""
    lines = [f"{source} is invalid:"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        hint = _HINTS.get(e["type"])
        msg = e["msg"].removeprefix("Value error, ")
        lines.append(f"  - {loc}: {msg}" + (f" (fix: {hint})" if hint else ""))
    return "\n".join(lines)


def parse_agent(data: Any, source: str = "agent config") -> AgentConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{source} must be a mapping of fields, got {type(data).__name__}")
    try:
        return AgentConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source)) from None


def load_agent(path: str | Path) -> AgentConfig:
    """Load an agent from a YAML or JSON file, or a bundled preset name (``dental``)."""
    p = Path(path)
    if not p.exists():
        preset = Path(__file__).parent / "presets" / f"{path}.yaml"
        if preset.exists():
            p = preset
        else:
            raise ConfigError(
                f"agent file {str(path)!r} not found (fix: give a path to a .yaml/.json file "
                f"or a preset name: {', '.join(preset_names())})"
            )
    text = p.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise ConfigError(f"{p} is not valid {p.suffix.lstrip('.') or 'YAML'}: {err}") from None
    return parse_agent(data, str(p)).as_trusted()


def preset_names() -> list[str]:
    return sorted(f.stem for f in (Path(__file__).parent / "presets").glob("*.yaml"))
