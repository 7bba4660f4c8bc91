"""Reading a child process's output all along, for the mount and VO test harnesses.

A process whose output nobody reads blocks once it has written a pipe's worth (64 KiB): a colo
logging a warning per lost file or damaged cache block after a power cut would hang in the middle
of a test, holding whatever it held.
"""
import threading


def keep_reading(stream, lines):
    """Appends the lines of `stream` to `lines` on a thread of its own until the stream ends; the
    thread (join it to be sure every line is in)."""
    def run():
        for line in stream:
            lines.append(line)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread
