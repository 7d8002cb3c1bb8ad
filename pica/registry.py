"""One lazy registry per kind of component, declared where each component lives, open to plugins.

Kinds (:data:`KINDS`): ``captioner``, ``backend`` (LLM), ``embedder``, ``choice`` (``--choose``
rules) and ``dataset`` (question sources). A built-in component is declared in its own module by a
module-level literal; the registry parses that literal alone (never imports the module) when it is
first asked::

    REGISTER = {"captioner": {"hf": "HFCaptioner"}}   # kind -> {name: class in this module}

The registry scans the modules of its stage packages (``pica/caption/*.py`` for captioners ...) for
that literal, so adding a component is one new module (plus its tests): the CLI's help, the
``--captioner``/``--llm`` parsing, did-you-mean errors and ``pica plugins`` pick it up. Its summary
is the first line of the class docstring.

Installed packages add components through entry points (:data:`ENTRY_POINT_GROUPS`)::

    [project.entry-points."pica.captioners"]
    shout = "mypkg:Shout"

read with :func:`importlib.metadata.entry_points` only when a name is not built in, or when every
name is listed. Built-in names win over plugins of the same name (a one-line warning names the
clash and the distribution); a plugin that fails to import is reported in one line naming it and
its distribution, and only its own use fails. Nothing heavy (torch, llama_cpp, faiss) is imported
until a component is built, so ``pica --help`` stays instant.

A component is a class with ``from_settings(name, settings)`` (``name`` is what follows
``KIND:`` in a spec) and, optionally, ``settings_fields``: the :class:`pica.config.Settings`
fields it reads (the captioner cache keys on them).
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib
import importlib.util
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pica.errors import ModelLoadError, unknown_name

BUILT_IN = "built-in"
# Kind -> the stage packages whose modules declare built-ins of that kind.
PACKAGES: dict[str, tuple[str, ...]] = {
    "captioner": ("pica.caption",),
    "backend": ("pica.llm",),
    "embedder": ("pica.retrieval",),
    "choice": ("pica.choice",),
    "dataset": ("pica.datasets",),
}
# Kind -> entry-point group of third-party plugins (kinds without one take built-ins only).
ENTRY_POINT_GROUPS: dict[str, str] = {
    "captioner": "pica.captioners",
    "backend": "pica.backends",
    "embedder": "pica.embedders",
}
KINDS = tuple(PACKAGES)
DECLARATION = "REGISTER"
_DECLARED = re.compile(rf"^{DECLARATION}\s*=\s*(?=\{{)", re.MULTILINE)
_ROLE = re.compile(r":[\w:]+:`([^`]*)`")
_PICA_ROOT = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Entry:
    """One registered component.

    Attributes:
        name: Its registry name (``hf``, ``openai``, ``shout``).
        kind: The registry it is in (:data:`KINDS`).
        target: Where it lives, ``"module:attr"``.
        source: ``"built-in"`` or the distribution that declares it (``"pica-shout 0.1"``).
        summary: One line: the first paragraph of its docstring (filled by
            :meth:`Registry.entries`).
        error: Why a plugin cannot be imported (``""`` when it can, or was not tried).
    """

    name: str
    kind: str
    target: str
    source: str = BUILT_IN
    summary: str = ""
    error: str = ""

    def to_dict(self) -> dict[str, str]:
        """The entry as JSON for ``pica plugins --json``."""
        data = {"name": self.name, "kind": self.kind, "source": self.source,
                "target": self.target, "summary": self.summary}
        if self.error:
            data["error"] = self.error
        return data


def declarations(path: Path) -> dict[str, dict[str, str]]:
    """The module-level ``REGISTER`` literal of a module file, read without importing it.

    Only the literal itself is parsed (a full parse of every stage module would cost more than the
    rest of ``pica --help``).

    Returns:
        ``{kind: {name: "class name"}}``; ``{}`` when the file declares nothing.
    """
    text = path.read_text(encoding="utf-8")
    found = _DECLARED.search(text)
    if found is None:
        return {}
    rest, depth = text[found.end():], 0
    for end, char in enumerate(rest):
        depth += (char in "{[(") - (char in "}])")
        if depth == 0:
            return ast.literal_eval(rest[: end + 1])
    raise SyntaxError(f"{path}: unterminated {DECLARATION} literal")


@functools.cache
def _class_summaries(path: Path) -> dict[str, str]:
    """First docstring paragraph of every top-level class in a module file (no import)."""
    summaries = {}
    for node in ast.parse(path.read_text(encoding="utf-8"), str(path)).body:
        if isinstance(node, ast.ClassDef):
            summaries[node.name] = _first_line(ast.get_docstring(node) or "")
    return summaries


def _first_line(doc: str) -> str:
    """A docstring's first paragraph on one line, reST roles and literals as plain text."""
    text = " ".join(doc.strip().split("\n\n")[0].split())
    return _ROLE.sub(lambda m: m.group(1).lstrip("~"), text).replace("``", "")


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


class Registry:
    """The components of one kind: built-ins declared in their modules, then entry-point plugins.

    Args:
        kind: The kind (``captioner``, ``backend``, ``embedder``, ``choice``, ``dataset``).
        packages: Stage packages whose modules' ``REGISTER`` literals declare built-ins.
        group: Entry-point group of plugins, or ``None`` for built-ins only.
        root: Folder of the top package (default: pica's own; tests point it elsewhere).
    """

    def __init__(self, kind: str, packages: tuple[str, ...], group: str | None = None,
                 root: Path | None = None) -> None:
        self.kind = kind
        self.packages = packages
        self.group = group
        self.root = root or _PICA_ROOT
        self._builtins: dict[str, Entry] | None = None
        self._files: dict[str, Path] = {}  # built-in name -> its module file
        self._plugins: dict[str, Any] | None = None  # name -> EntryPoint
        self._loaded: dict[str, Any] = {}
        self._failed: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, group={self.group!r})"

    # -- discovery ----------------------------------------------------------------------------
    def builtins(self) -> dict[str, Entry]:
        """Built-in entries by name, in module then declaration order (read once, no import)."""
        if self._builtins is None:
            found: dict[str, Entry] = {}
            for package in self.packages:
                folder = self._folder(package)
                for path in sorted(folder.glob("*.py")):
                    declared = declarations(path).get(self.kind, {})
                    if not declared:
                        continue
                    module = package if path.stem == "__init__" else f"{package}.{path.stem}"
                    for name, attr in declared.items():
                        found[name] = Entry(name, self.kind, f"{module}:{attr}")
                        self._files[name] = path
            self._builtins = found
        return self._builtins

    def _folder(self, package: str) -> Path:
        """The folder of a stage package (pica's own without importing it)."""
        if package == "pica" or package.startswith("pica."):
            return self.root.joinpath(*package.split(".")[1:])
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ModuleNotFoundError(f"{self.kind} registry: no package {package}")
        return Path(next(iter(spec.submodule_search_locations)))

    def refresh(self) -> None:
        """Forget what was discovered and loaded (after :attr:`packages` or installed
        distributions change)."""
        self._builtins = self._plugins = None
        self._files.clear()
        self._loaded.clear()
        self._failed.clear()

    def plugins(self) -> dict[str, Any]:
        """Entry points of the plugin group by name (built-in names left out, with a warning)."""
        if self._plugins is None:
            self._plugins = {}
            if self.group:
                from importlib.metadata import entry_points

                for ep in entry_points(group=self.group):
                    if ep.name in self.builtins():
                        _warn(f"{self.kind} plugin '{ep.name}' of {_distribution(ep)} is ignored:"
                              f" pica has a built-in {self.kind} of that name")
                    elif ep.name not in self._plugins:
                        self._plugins[ep.name] = ep
        return self._plugins

    def names(self) -> list[str]:
        """Every registered name: built-ins in declaration order, then plugins (sorted)."""
        return [*self.builtins(), *sorted(self.plugins())]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self.builtins() or name in self.plugins())

    # -- use ----------------------------------------------------------------------------------
    def entry(self, name: str) -> Entry:
        """The entry registered as ``name`` (plugins are not imported).

        Raises:
            InputError: ``name`` is not registered; the message suggests the closest name and
                lists every available one, plugins included.
        """
        if name in self.builtins():
            return self.builtins()[name]
        ep = self.plugins().get(name)
        if ep is None:
            raise unknown_name(self.kind, name, self.names())
        return Entry(name, self.kind, ep.value, _distribution(ep), error=self._failed.get(name, ""))

    def get(self, name: str) -> Any:
        """Import and return the component registered as ``name`` (once per process).

        Raises:
            InputError: ``name`` is not registered (did-you-mean, every available name).
            ModelLoadError: a plugin's module cannot be imported (one line naming the plugin and
                its distribution).
        """
        if name in self._loaded:
            return self._loaded[name]
        entry = self.entry(name)
        if entry.source == BUILT_IN:
            module, _, attr = entry.target.partition(":")
            obj = getattr(importlib.import_module(module), attr)
        else:
            obj = self._load_plugin(name)
        self._loaded[name] = obj
        return obj

    def _load_plugin(self, name: str) -> Any:
        ep = self.plugins()[name]
        try:
            return ep.load()
        except Exception as e:  # any failure of third-party code: reported, never fatal to pica
            error = f"{type(e).__name__}: {' '.join(str(e).split())}"
            self._failed[name] = error
            raise ModelLoadError(
                f"{self.kind} plugin '{name}' ({ep.value}) of {_distribution(ep)} cannot be"
                f" imported: {error}; reinstall or uninstall that package") from None

    def entries(self, load: bool = False) -> list[Entry]:
        """Every registered entry: name, kind, source (``built-in`` or distribution), summary.

        Args:
            load: Import each plugin to read its summary; one that fails is reported in one line
                on stderr and listed with its ``error``, the others are unaffected.
        """
        result = [dataclasses.replace(e, summary=_class_summaries(self._files[e.name]).get(
            e.target.partition(":")[2], "")) for e in self.builtins().values()]
        for name in sorted(self.plugins()):
            summary = ""
            if load:
                try:
                    summary = _first_line(getattr(self.get(name), "__doc__", None) or "")
                except ModelLoadError as e:
                    _warn(str(e))
            result.append(Entry(name, self.kind, self.plugins()[name].value,
                                _distribution(self.plugins()[name]), summary,
                                self._failed.get(name, "")))
        return result


def _distribution(ep: Any) -> str:
    """The name of the distribution that declares an entry point (``"unknown"`` when not known)."""
    dist = getattr(ep, "dist", None)
    name = dist.metadata["Name"] if dist is not None else None
    return f"{name} {dist.version}" if name else "an unknown distribution"


REGISTRIES: dict[str, Registry] = {
    kind: Registry(kind, PACKAGES[kind], ENTRY_POINT_GROUPS.get(kind)) for kind in KINDS
}
captioners = REGISTRIES["captioner"]
backends = REGISTRIES["backend"]
embedders = REGISTRIES["embedder"]
choice_rules = REGISTRIES["choice"]
datasets = REGISTRIES["dataset"]


def registry(kind: str) -> Registry:
    """The registry of ``kind``.

    Raises:
        InputError: an unknown kind (names every kind).
    """
    if kind not in REGISTRIES:
        raise unknown_name("component kind", kind, REGISTRIES)
    return REGISTRIES[kind]


def resolve(kind: str, name: str) -> Any:
    """Import and return the component registered as ``name`` in the ``kind`` registry.

    Raises:
        InputError: ``name`` is not registered (the message suggests the closest name).
    """
    return registry(kind).get(name)


def split_spec(spec: str, kind: str) -> tuple[str, str] | None:
    """``(name, rest)`` of a ``NAME:REST`` spec whose ``NAME`` is registered in ``kind``, else
    ``None``."""
    name, sep, rest = spec.partition(":")
    if sep and name and "/" not in name and "\\" not in name and name in registry(kind):
        return name, rest
    return None


# Read-only views under the names this module had before the registries (``BACKENDS`` ...).
_OLD_NAMES = {"BACKENDS": "backend", "CAPTIONERS": "captioner", "EMBEDDERS": "embedder"}


def __getattr__(name: str) -> Any:
    if name in _OLD_NAMES:
        return {e.name: e.target for e in REGISTRIES[_OLD_NAMES[name]].builtins().values()}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
