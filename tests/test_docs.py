"""README.md and docs/*.md stay true: their GraphQL examples run, their links and commands exist."""

import re
import subprocess
from pathlib import Path
from textwrap import dedent

import pytest
from django.core.management import get_commands
from django.test import Client

from crm.models import Order
from cronjobs.management.commands.crontab import Command as CrontabCommand
from cronjobs.models import JobRun
from tests.crm.gql_helpers import ok
from tests.factories import UserFactory
from tests.runs import finish_detached

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCE_RE = re.compile(r"^[ \t]*(```|~~~)(\w*).*?^[ \t]*\1[ \t]*$", re.MULTILINE | re.DOTALL)
INLINE_CODE_RE = re.compile(r"`[^`\n]*`")
LINK_RE = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")
HEADING_RE = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)


# What a block's operations must have done, beyond answering without errors.
AFTERWARDS = {
    "docs/graphql.md-1": lambda: Order.objects.get().lines.get().quantity == 2,  # productIds: ["1", "1"]
    # runCronJob hands the run to a process of its own (tests/runs.py): it is running, then succeeds.
    "docs/operations.md-1": lambda: (
        [finish_detached(run).status for run in JobRun.objects.filter(trigger="graphql")] == ["succeeded"]
    ),
}


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def fenced(path: Path, language: str) -> list[str]:
    """The contents of the code blocks in ``language``, in order, dedented."""
    text = path.read_text(encoding="utf-8")
    blocks = [m.group(0) for m in FENCE_RE.finditer(text) if m.group(2) == language]
    return [dedent(block.split("\n", 1)[1].rsplit("```", 1)[0]) for block in blocks]


def graphql_blocks() -> list[tuple[Path, int, str]]:
    """Every ```graphql block of the docs: (file, number of the block in the file, text)."""
    return [(path, n, block) for path in DOCS for n, block in enumerate(fenced(path, "graphql"), 1)]


def operations(block: str) -> list[str]:
    """One operation per line starting with `mutation`, `query` or `{`; continuation lines are indented."""
    return [op.strip() for op in re.split(r"\n(?=mutation|query|\{)", block) if op.strip()]


def code(text: str) -> str:
    """Only the code of the text: its code blocks and inline code, where commands are written."""
    return "\n".join(m.group(0) for regex in (FENCE_RE, INLINE_CODE_RE) for m in regex.finditer(text))


def prose(text: str) -> str:
    """The text without code blocks and inline code, where a link or heading may appear."""
    return INLINE_CODE_RE.sub("", FENCE_RE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    result = set()
    for heading in HEADING_RE.findall(FENCE_RE.sub("", path.read_text(encoding="utf-8"))):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def test_the_examples_are_found():
    """Guards the extraction itself: the blocks this module runs and checks are found."""
    ids = {f"{rel(path)}-{n}" for path, n, _ in graphql_blocks()}
    assert {"README.md-1", *AFTERWARDS} <= ids


@pytest.mark.django_db(transaction=True, reset_sequences=True)
@pytest.mark.parametrize(
    ("path", "number", "block"), graphql_blocks(), ids=[f"{rel(path)}-{n}" for path, n, _ in graphql_blocks()]
)
def test_graphql_examples_run_as_written(path, number, block, settings, tmp_path):
    """Each block runs in order on an empty database, as a superuser: no error, top-level or in a payload."""
    settings.CRM_LOG_DIR = str(tmp_path)  # runCronJob runs the heartbeat, which writes its log
    client = Client()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    for operation in operations(block):
        data = ok(client, operation)
        for payload in data.values():
            assert not isinstance(payload, dict) or payload.get("errors", []) == [], (operation, data)
    assert AFTERWARDS.get(f"{rel(path)}-{number}", lambda: True)()


@pytest.mark.parametrize("path", DOCS, ids=rel)
def test_relative_links_and_anchors_resolve(path):
    broken = []
    for target in LINK_RE.findall(prose(path.read_text(encoding="utf-8"))):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):
            continue  # http:, https:, mailto: ...
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(f"{target}: no file {linked}")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no heading with anchor #{anchor} in {rel(linked)}")
    assert not broken, f"{rel(path)} has broken links:\n" + "\n".join(broken)


@pytest.mark.parametrize("path", DOCS, ids=rel)
def test_named_commands_exist(path):
    """`manage.py <command>`, `crontab <subcommand>` and `make <target>` name things that exist."""
    text = code(path.read_text(encoding="utf-8"))
    commands = set(get_commands())
    parser = CrontabCommand().create_parser("manage.py", "crontab")
    subcommands = next(action.choices for action in parser._actions if action.dest == "subcommand")
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([\w-]+):", makefile, re.MULTILINE))
    missing = [f"manage.py {name}" for name in re.findall(r"manage\.py (\w+)", text) if name not in commands]
    missing += [f"crontab {name}" for name in re.findall(r"manage\.py crontab (\w+)", text) if name not in subcommands]
    missing += [f"make {name}" for name in re.findall(r"\bmake ([a-z][\w-]*)", text) if name not in targets]
    assert not missing, f"{rel(path)} names what does not exist: {sorted(set(missing))}"


def test_slug_matches_github():
    assert slug("`manage.py crontab`") == "managepy-crontab"
    assert slug("Adding another app's fields") == "adding-another-apps-fields"
    assert slug("Errors, IDs, money") == "errors-ids-money"


def test_readme_layout_names_every_top_level_folder():
    try:
        listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: no list of tracked folders")
    folders = {path.split("/", 1)[0] for path in listed.splitlines() if "/" in path}
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    layout = readme.split("## Where things are\n", 1)[1].split("\n## ", 1)[0]
    assert not [f for f in sorted(folders) if f"\n{f}/" not in layout], "README's layout misses these folders"
    # ... and names only what exists at the top level (folders other engineers are adding excepted).
    block = FENCE_RE.search(layout).group(0).split("\n", 1)[1].rsplit("```", 1)[0]
    named = {line.split()[0] for line in block.splitlines() if line and not line[0].isspace()}
    named |= set(block.strip().splitlines()[-1].split())
    pending = {"deploy/"}  # issue 14
    assert not [n for n in sorted(named - pending) if not (ROOT / n).exists()], "README's layout names what is gone"


def test_cronjobs_example_parses():
    """docs/scheduling.md's CRONJOBS example is valid: only its made-up `app.` targets cannot be imported."""
    from cronjobs.registry import parse_cronjobs

    namespace: dict = {}
    exec(fenced(ROOT / "docs" / "scheduling.md", "python")[0], namespace)  # noqa: S102 - our own docs
    registry = parse_cronjobs(namespace["CRONJOBS"])
    assert len(registry.jobs) == len(namespace["CRONJOBS"])
    problems = [(p.id, p.msg) for p in registry.all_problems()]
    assert problems and all(id_ == "cronjobs.E004" and "'app.cron." in msg for id_, msg in problems), problems


def test_settings_table_lists_exactly_the_variables_settings_reads():
    operations = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    table = operations.split("## Settings\n", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)`(?: / `([A-Z][A-Z0-9_]+)`)?", table, re.MULTILINE))
    documented = {name for pair in documented for name in pair if name}
    source = (ROOT / "alx_backend_graphql_crm" / "settings.py").read_text(encoding="utf-8")
    read = set(re.findall(r"""(?:environ\.get|env_\w+)\(\s*["']([A-Z][A-Z0-9_]+)["']""", source))
    if "dj_database_url.config(" in source:
        read.add("DATABASE_URL")  # dj-database-url's own variable
    assert documented == read, {"documented, not read": documented - read, "read, not documented": read - documented}


def planning_section() -> str:
    text = (ROOT / "docs" / "scheduling.md").read_text(encoding="utf-8")
    return text.split("## Planning: `crontab plan`\n", 1)[1].split("\n## ", 1)[0]


def console_blocks(text: str) -> list[tuple[str, str]]:
    """Each ```console block as (command line without its `$ `, the output shown under it)."""
    blocks = [m.group(0) for m in FENCE_RE.finditer(text) if m.group(2) == "console"]
    result = []
    for block in blocks:
        command, _, output = dedent(block.split("\n", 1)[1].rsplit("```", 1)[0]).partition("\n")
        assert command.startswith("$ "), command
        result.append((command[2:], output.rstrip("\n")))
    return result


@pytest.mark.parametrize("example", range(4))
def test_the_plan_examples_print_what_the_docs_show(example, settings):
    """docs/scheduling.md's `crontab plan` examples are real: the project's CRONJOBS, the command, its output."""
    import io
    import shlex

    from django.core.management import call_command

    from alx_backend_graphql_crm import settings as project_settings

    blocks = console_blocks(planning_section())
    assert len(blocks) == 4
    command, shown = blocks[example]
    words = shlex.split(command)
    environment = dict(word.split("=", 1) for word in words[: words.index(".venv/bin/python")])
    assert set(environment) <= {"DJANGO_TIME_ZONE"} and words[words.index("manage.py") + 1 :][:2] == ["crontab", "plan"]
    settings.TIME_ZONE = environment.get("DJANGO_TIME_ZONE", "UTC")
    settings.CRONJOBS = project_settings.CRONJOBS
    out = io.StringIO()
    call_command(*words[words.index("manage.py") + 1 :], stdout=out)
    assert out.getvalue().rstrip("\n") == shown


def test_the_planned_runs_example_passes(settings):
    from alx_backend_graphql_crm import settings as project_settings

    settings.CRONJOBS = project_settings.CRONJOBS
    [block] = [b for b in (m.group(0) for m in FENCE_RE.finditer(planning_section())) if b.startswith("```python")]
    namespace: dict = {}
    exec(dedent(block.split("\n", 1)[1].rsplit("```", 1)[0]), namespace)  # noqa: S102 - our own docs
    [test] = [value for name, value in namespace.items() if name.startswith("test_")]
    test(settings)


# --- docs/security.md's table of every limit and rule ----------------------------------------------

SETTING_RE = re.compile(r'^[A-Z][A-Z0-9_]*(?:\["[A-Z_]+"\])?$')
NUMBER_RE = re.compile(r"\d[\d,]*(?:\.\d+)?")


def limits_table() -> list[dict[str, str]]:
    """The rows of docs/security.md's "Limits and rules" table, group headings left out."""
    text = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    section = text.split("## Limits and rules\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in lines[0].strip().strip("|").split("|")]
    rows = [
        dict(zip(header, (cell.strip() for cell in line.strip().strip("|").split("|")), strict=True))
        for line in lines[1:]
    ]
    return [row for row in rows if not row["limit or rule"].startswith("**")]


def named(cell: str) -> str | None:
    found = re.fullmatch(r"`([^`]+)`", cell)
    return found.group(1) if found else None


def project_settings(names: list[str]) -> dict:
    """The values of ``names`` in the project's own settings, DEBUG off, none of this environment's variables."""
    import json
    import os
    import sys

    code = (
        "import json, os, datetime; from django.conf import settings as s; from cronjobs import conf\n"
        "def value(name):\n"
        "    base, _, key = name.partition('[')\n"
        "    v = conf.get(base) if base in conf.SETTINGS else getattr(s, base)\n"
        "    return v[key[1:-2]] if key else v\n"
        "def plain(v):\n"
        "    if isinstance(v, datetime.timedelta): return {'seconds': v.total_seconds()}\n"
        "    if isinstance(v, (list, tuple)) and all(isinstance(i, str) for i in v): return list(v)\n"
        "    return v if isinstance(v, (bool, int, float, str, type(None))) else {'object': repr(v)}\n"
        "print(json.dumps({n: plain(value(n)) for n in json.loads(os.environ['SHOW'])}))"
    )
    prefixes = ("DJANGO_", "DATABASE_URL", "CRM_", "CRONTAB_", "CRONJOBS_", "GRAPHQL_", "LOGIN_", "WEB_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env |= {"CRM_ENV_FILE": os.devnull, "DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY": "k" * 50, "SHOW": json.dumps(names)}
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "--no-imports", "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def resolve(path: str):
    """The object a dotted path names: a module's attribute, a class's, a model's field."""
    import importlib

    parts = path.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            found = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attribute in parts[split:]:
            found = getattr(found, attribute)
        return found
    raise ImportError(path)


def shows(value, cell: str) -> bool:
    """Whether a default cell states ``value``."""
    import datetime
    from decimal import Decimal

    from django.db.models.query_utils import DeferredAttribute

    number = NUMBER_RE.search(cell)
    if isinstance(value, DeferredAttribute):  # a model field's column
        value = value.field.max_length or value.field.max_digits
    if isinstance(value, dict) and "seconds" in value:
        value = datetime.timedelta(seconds=value["seconds"])
    if isinstance(value, datetime.timedelta):
        unit = 60 if "minute" in cell else 1
        return number is not None and Decimal(number.group().replace(",", "")) * unit == Decimal(value.total_seconds())
    if isinstance(value, bool) or value is None:
        return cell.startswith(f"`{value}`")
    if isinstance(value, int | float | Decimal):
        return number is not None and Decimal(number.group().replace(",", "")) == Decimal(str(value))
    if isinstance(value, str | list):
        text = value if isinstance(value, str) else ",".join(value)
        return cell == "empty" if not text else cell.startswith(f"`{text}`")
    return True  # a function, a class, a policy: that the name resolves is the check


def test_the_limits_table_names_what_exists_with_its_default():
    rows = limits_table()
    assert len(rows) > 50, "the table was not found whole"
    settings_named = [named(row["setting or code"]) for row in rows]
    values = project_settings([name for name in settings_named if name and SETTING_RE.match(name)])
    documented = (ROOT / ".env.example").read_text() + (ROOT / "docs" / "deploy.md").read_text()
    wrong = []
    for row, name in zip(rows, settings_named, strict=True):
        cell = row["setting or code"]
        if cell != "—" and name is None:
            wrong.append(f"{row['limit or rule']}: one name in backquotes or —, not {cell!r}")
            continue
        if name is not None:
            value = values[name] if SETTING_RE.match(name) else resolve(name)
            if not shows(value, row["default"]):
                wrong.append(f"{name}: the table says {row['default']!r}, the code {value!r}")
        variable = named(row["environment"])
        if variable and not re.search(rf"\b{variable}\b", documented):
            wrong.append(f"{variable}: not in .env.example or docs/deploy.md")
    assert not wrong, "\n".join(wrong)


def test_the_limits_table_lists_every_limit_setting():
    source = (ROOT / "alx_backend_graphql_crm" / "settings.py").read_text(encoding="utf-8")
    limits = set(
        re.findall(r"^((?:GRAPHQL|CRM_MAX|LOGIN|AXES_FAILURE|AXES_LOCKOUT)_[A-Z0-9_]*) = ", source, re.MULTILINE)
    )
    listed = {named(row["setting or code"]) for row in limits_table()}
    assert limits and not limits - listed, f"settings.py has limits the table misses: {sorted(limits - listed)}"
