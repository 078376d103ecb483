"""Commands that work on stored data (``status``, ``report``, ``attention``, ``resolve``,
``cancel``, ``ack``, ``db prune``) never create a store: not a SQLite file, not its folders,
not a PostgreSQL schema or table, and never migrate one. A mistyped path, a file that is no
store, or a database not migrated yet is one error line (exit 2) naming what to run; real
files and the real PostgreSQL server."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from outreach import Client, Plan, Recipient, Step
from outreach.cli import app
from outreach.stores import postgres, sqlite
from outreach.testing import InMemoryChannel

COMMANDS = [
    ["status", "--campaign", "c"],
    ["status", "some-id"],
    ["status", "--recipient", "pax-1"],
    ["report", "c"],
    ["report", "c", "--format", "csv"],
    ["attention"],
    ["resolve", "some-id", "--by", "agent-7"],
    ["cancel", "--campaign", "c"],
    ["cancel", "some-id"],
    ["db", "prune", "--older-than", "90d"],
    ["ack", "some-id"],
]
NEWEST_SQLITE = sqlite.migrations()[-1][0]
NEWEST_POSTGRES = postgres.migrations()[-1][0]


def _run(command: list[str], url: str, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    """Run a command on the store at ``url`` (``ack`` takes it from OUTREACH_STORE)."""
    monkeypatch.setenv("OUTREACH_STORE", url)
    args = command if command[0] == "ack" else [*command, "--store", url]
    result = CliRunner().invoke(app, args)
    return result.exit_code, result.output


def _one_error(output: str, *said: str) -> None:
    assert output.count("error:") == 1, output
    assert "Traceback" not in output
    for words in said:
        assert words in output, output


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_mistyped_sqlite_path_creates_no_file_or_folder(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, output = _run(command, "sqlite:///typo/outreach.db", monkeypatch)
    assert code == 2
    _one_error(output, "no store at typo/outreach.db", "outreach db upgrade")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_an_empty_file_is_not_made_a_store(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "empty.db"
    path.touch()
    code, output = _run(command, f"sqlite:///{path}", monkeypatch)
    assert code == 2
    _one_error(output, "is not an outreach store yet", "outreach db upgrade")
    assert path.read_bytes() == b""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.db"]


def test_a_file_that_is_no_database_is_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a database, just some notes\n" * 100)
    code, output = _run(["report", "c"], f"sqlite:///{path}", monkeypatch)
    assert code == 2
    _one_error(output, "notes.txt is not an outreach store")
    assert path.read_text() == "not a database, just some notes\n" * 100


def _sqlite_at_version(path: Path, version: int) -> None:
    """A store file migrated up to ``version`` only, as an older outreach left it."""
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        for number, script in sqlite.migrations():
            if number <= version:
                db.executescript(script)
                db.execute("INSERT INTO schema_version (version) VALUES (?)", (number,))
    sqlite3.connect(path).close()


def _sqlite_version(path: Path) -> int:
    with sqlite3.connect(path) as db:
        version: int = db.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
    return version


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_an_old_sqlite_schema_is_not_migrated_by_a_read(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "old.db"
    _sqlite_at_version(path, 2)
    code, output = _run(command, f"sqlite:///{path}", monkeypatch)
    assert code == 2
    _one_error(output, f"at schema version 2 and this outreach needs {NEWEST_SQLITE}", "db upgrade")
    assert _sqlite_version(path) == 2


def test_db_upgrade_then_a_read_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "old.db"
    _sqlite_at_version(path, 2)
    url = f"sqlite:///{path}"
    upgraded = CliRunner().invoke(app, ["db", "upgrade", "--store", url])
    assert upgraded.exit_code == 0, upgraded.output
    assert _sqlite_version(path) == NEWEST_SQLITE
    code, output = _run(["status", "--campaign", "c"], url, monkeypatch)
    assert (code, output) == (0, "campaign c: no notifications\n")


def test_a_read_of_a_current_store_finds_what_is_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'o.db'}"
    notice = tmp_path / "templates" / "notice"
    notice.mkdir(parents=True)
    (notice / "sms.txt").write_text("Hello.")
    plan = Plan(name="p", steps=[Step(channel="sms", template="notice")])
    channels = {"sms": InMemoryChannel(name="sms")}
    with Client(store=url, channels=channels, templates=tmp_path / "templates") as ox:
        ox.start(Recipient(id="pax-1", phone="+16175550101"), plan, key="c/pax-1", campaign="c")
    code, output = _run(["status", "--campaign", "c"], url, monkeypatch)
    assert (code, output) == (0, "campaign c: pending: 1\n")
    code, output = _run(["status", "--recipient", "pax-1"], url, monkeypatch)
    assert code == 0
    assert "created" in output


# -- PostgreSQL --------------------------------------------------------------------------------


def _in_schema(postgres_url: str, schema: str) -> str:
    return f"{postgres_url}?options=-csearch_path%3D{schema}"


def _schema_exists(postgres_url: str, schema: str) -> bool:
    import psycopg

    with psycopg.connect(postgres_url) as db:
        row = db.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
    return row is not None


def _postgres_at_version(postgres_url: str, schema: str, version: int) -> None:
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as db:
        db.execute(f"CREATE SCHEMA {schema}")
        db.execute(f"SET search_path = {schema}")
        db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        for number, script in postgres.migrations():
            if number <= version:
                db.execute(script.encode())
                db.execute("INSERT INTO schema_version (version) VALUES (%s)", (number,))


def _postgres_version(postgres_url: str, schema: str) -> int:
    import psycopg

    with psycopg.connect(postgres_url) as db:
        row = db.execute(f"SELECT MAX(version) FROM {schema}.schema_version").fetchone()
    assert row is not None
    version: int = row[0]
    return version


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_missing_postgres_schema_is_not_created(
    command: list[str], postgres_url: str, postgres_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, output = _run(command, _in_schema(postgres_url, postgres_schema), monkeypatch)
    assert code == 2
    _one_error(output, "no outreach store in PostgresStore(", "outreach db upgrade")
    assert not _schema_exists(postgres_url, postgres_schema)


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_an_old_postgres_schema_is_not_migrated_by_a_read(
    command: list[str], postgres_url: str, postgres_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _postgres_at_version(postgres_url, postgres_schema, 1)
    code, output = _run(command, _in_schema(postgres_url, postgres_schema), monkeypatch)
    assert code == 2
    _one_error(
        output, f"at schema version 1 and this outreach needs {NEWEST_POSTGRES}", "db upgrade"
    )
    assert _postgres_version(postgres_url, postgres_schema) == 1


def test_postgres_db_upgrade_then_a_read_works(
    postgres_url: str, postgres_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _postgres_at_version(postgres_url, postgres_schema, 1)
    url = _in_schema(postgres_url, postgres_schema)
    upgraded = CliRunner().invoke(app, ["db", "upgrade", "--store", url])
    assert upgraded.exit_code == 0, upgraded.output
    assert _postgres_version(postgres_url, postgres_schema) == NEWEST_POSTGRES
    code, output = _run(["report", "c"], url, monkeypatch)
    assert (code, output) == (0, "campaign c: no notifications\n")
    code, output = _run(["attention", "--campaign", "c"], url, monkeypatch)
    assert (code, output) == (0, "Nobody needs a person in campaign c.\n")


@pytest.mark.parametrize(
    "command", [["status", "--campaign", "c"], ["db", "upgrade"]], ids=" ".join
)
def test_a_sqlite_store_from_a_newer_outreach_is_refused(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rollback must not read records laid out by a newer schema (nor 'migrate' it)."""
    path = tmp_path / "newer.db"
    _sqlite_at_version(path, NEWEST_SQLITE)
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO schema_version (version) VALUES (?)", (NEWEST_SQLITE + 1,))
    code, output = _run(command, f"sqlite:///{path}", monkeypatch)
    assert code == 2
    _one_error(output, f"schema version {NEWEST_SQLITE + 1}, newer than this outreach knows")
    assert _sqlite_version(path) == NEWEST_SQLITE + 1


@pytest.mark.parametrize("command", [["report", "c"], ["db", "upgrade"]], ids=" ".join)
def test_a_postgres_store_from_a_newer_outreach_is_refused(
    command: list[str], postgres_url: str, postgres_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg

    _postgres_at_version(postgres_url, postgres_schema, NEWEST_POSTGRES)
    with psycopg.connect(postgres_url, autocommit=True) as db:
        db.execute(
            f"INSERT INTO {postgres_schema}.schema_version (version) VALUES (%s)",
            (NEWEST_POSTGRES + 1,),
        )
    code, output = _run(command, _in_schema(postgres_url, postgres_schema), monkeypatch)
    assert code == 2
    _one_error(output, f"schema version {NEWEST_POSTGRES + 1}, newer than this outreach knows")


def test_a_read_leaves_the_sqlite_files_journal_mode_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "store.db"
    _sqlite_at_version(path, NEWEST_SQLITE)
    before = path.read_bytes()
    code, output = _run(["status", "--campaign", "c"], f"sqlite:///{path}", monkeypatch)
    assert (code, output) == (0, "campaign c: no notifications\n")
    assert path.read_bytes() == before
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
