"""The progress display: drawn on a terminal only, with its total from the first frame."""

import io

from lstmknn.engine.progress import progress_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_first_frame_already_shows_the_total(monkeypatch):
    term = Terminal()
    monkeypatch.setattr("sys.stderr", term)
    with progress_bar(True, desc="sp500 folds") as progress:
        assert term.getvalue() == ""  # nothing drawn before the total is known
        progress(0, 12)
        assert "0/12" in term.getvalue().split("\r")[1]
        progress(12, 12)
    assert "12/12" in term.getvalue()


def test_nothing_is_drawn_when_stderr_is_not_a_terminal(monkeypatch):
    logs = io.StringIO()
    monkeypatch.setattr("sys.stderr", logs)
    with progress_bar(True, desc="x") as progress:
        assert progress is None
    assert logs.getvalue() == ""
