"""``podcite ask`` in a terminal: the /api/ask document for a person.

The command (server/cli.py) runs the one query path and builds the same
document the API returns; this renders it with rich, answer sentences as
terminal hyperlinks to their moment, and opens the first moment for ``--open``.
"""

from __future__ import annotations

from typing import Any

from ingest.errors import PodciteError


def print_answer(doc: Any, abstained: bool) -> None:
    """The answer for a person: sentences as terminal hyperlinks to their moment
    (where the terminal supports them; the URL is printed beside them too)."""
    from rich.console import Console
    from rich.markup import escape

    console = Console(highlight=False)
    answer, results = doc.answer, doc.results
    console.print(f"[bold]{escape(doc.query)}[/bold]")
    if abstained:
        console.print(
            "\nNothing in the library answers this; the nearest passages are weak matches."
        )
    if answer:
        console.print("\n[bold]Answer[/bold] (from the sources, word for word)")
        for a in answer:
            words = escape(a.shown)
            text = f"[link={a.url}]{words}[/link]" if a.url else words
            console.print(f"  • {text} [cyan]{timestamp_label(a.timestamp)}[/cyan] {a.url or ''}")
            if a.heard:  # a wiki sentence at its transcript's moment: the words said then
                console.print(f"    [dim]said at {a.timestamp.label}:[/dim] “{escape(a.heard)}”")
    console.print(f"\n[bold]{len(results)} passages[/bold] ({doc.took_ms:.0f} ms)")
    for r in results:
        ep = escape(r.episode.title if r.episode else "episode unknown")
        trail = escape(" › ".join(r.trail))
        label = timestamp_label(r.timestamp)
        when = f"[link={r.url}]{label}[/link]" if r.url else label
        shown = f"  [dim]{trail}[/dim]" if trail else ""
        console.print(f"\n[bold]{r.rank}.[/bold] [cyan]{when}[/cyan] {ep}{shown}")
        console.print(f"   {escape(r.text)}")
        if r.heard:  # a wiki result at its transcript's moment: the words said then
            console.print(f"   [dim]said at {label}:[/dim] “{escape(r.heard)}”")
        if r.url:
            console.print(f"   [blue]{r.url}[/blue]")
        if r.links:
            console.print(f"   [dim]related: {escape(', '.join(r.links))}[/dim]")


def open_first_moment(doc: Any) -> None:
    """``--open``: the first answer sentence's moment, else the first result's."""
    import webbrowser

    urls = [a.url for a in doc.answer] + [r.url for r in doc.results]
    first = next((u for u in urls if u), None)
    if first is None:
        raise PodciteError("--open: no result has a moment to open")
    if not webbrowser.open(first):
        raise PodciteError(f"--open: no web browser could open {first}")


def timestamp_label(t: Any) -> str:
    """A timestamp as the terminal shows it: ``≈`` before an approximate one."""
    if t is None:
        return "(no time)"
    return f"{'' if t.exact else '≈'}{t.label}"
