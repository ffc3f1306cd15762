#!/usr/bin/env python3
"""Writes the manual page score(1) from the tool's own help texts.

usage: gen-manpage.py SCORE_EXECUTABLE OUTPUT

The help of `score --help` and of `score COMMAND --help` for every command it lists is the one
source of truth: this script only turns it into roff (options become tagged paragraphs, the
rest is kept as preformatted text), so the page cannot drift from the program.
"""
import re
import subprocess
import sys

OPTION = re.compile(r"^  (?:(-\w), )?\s*(--[\w-]+)(?: ([A-Z][\w.,|]*))?\s{2,}(.*)$")
COMMAND = re.compile(r"^  ([a-z][\w-]*)\s{2,}(.*)$")


def run_help(exe, *args):
    out = subprocess.run([exe, *args, "--help"], check=True, capture_output=True, text=True)
    return out.stdout


def esc(text):
    """Escapes text for roff: backslashes, hyphens of options, and leading control chars."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    if text.startswith((".", "'")):
        text = "\\&" + text
    return text


def option_item(m):
    short, long_, metavar, help_ = m.groups()
    head = ""
    if short:
        head += "\\fB%s\\fR, " % esc(short)
    head += "\\fB%s\\fR" % esc(long_)
    if metavar:
        head += " \\fI%s\\fR" % esc(metavar)
    return [".TP", head, esc(help_)]


def body(text, skip_usage=True):
    """Roff for one help text: option lines as .TP items, other blocks preformatted."""
    lines = text.rstrip("\n").split("\n")
    out, pre = [], False
    for line in lines:
        if skip_usage and line.startswith("usage:"):
            continue
        m = OPTION.match(line)
        if m:
            if pre:
                out.append(".fi")
                pre = False
            out += option_item(m)
            continue
        if line.strip() == "":
            if pre:
                out.append(".fi")
                pre = False
            out.append(".PP")
            continue
        if line.endswith(":") and not line.startswith(" "):
            if pre:
                out.append(".fi")
                pre = False
            out += [".PP", "\\fB%s\\fR" % esc(line[:-1])]
            continue
        if not pre:
            out += [".nf"]
            pre = True
        out.append(esc(line))
    if pre:
        out.append(".fi")
    return out


def main():
    exe, output = sys.argv[1], sys.argv[2]
    top = run_help(exe)
    version = ""
    for line in top.splitlines():
        if line.startswith("libscore "):
            version = line.split()[1]
    commands = []
    in_commands = False
    for line in top.splitlines():
        if line.startswith("commands:"):
            in_commands = True
            continue
        if in_commands:
            m = COMMAND.match(line)
            if not m:
                break
            commands.append((m.group(1), m.group(2)))
    if not commands:
        sys.exit("gen-manpage: no commands found in 'score --help'")
    page = [
        '.TH SCORE 1 "" "libscore %s" "User Commands"' % esc(version),
        ".SH NAME",
        "score \\- train score-based generative models, sample them and evaluate likelihoods",
        ".SH SYNOPSIS",
        "\\fBscore\\fR \\fICOMMAND\\fR [\\fIoptions\\fR]",
        ".SH DESCRIPTION",
        "\\fBscore\\fR is the command-line tool of libscore, a C library for score-based "
        "generative modelling. Each command has its own options, listed below and by "
        "\\fBscore\\fR \\fICOMMAND\\fR \\fB\\-\\-help\\fR.",
        ".SH COMMANDS",
    ]
    for name, summary in commands:
        page += [".TP", "\\fB%s\\fR" % esc(name), esc(summary)]
    general, skipping = [], False
    for line in top.splitlines():
        if line.startswith("commands:"):
            skipping = True   # already under COMMANDS
        elif skipping and line.strip() == "":
            skipping = False
        elif not skipping and not line.startswith("libscore "):
            general.append(line)
    page += [".SH GENERAL"] + body("\n".join(general))
    for name, _ in commands:
        text = run_help(exe, name)
        usage = next((l for l in text.splitlines() if l.startswith("usage:")), "")
        page += [".SH \"SCORE %s\"" % esc(name.upper())]
        if usage:
            page += [".PP", "\\fB%s\\fR" % esc(usage[len("usage: "):])]
        page += body(text)
    page += [
        ".SH ENVIRONMENT",
        ".TP", "\\fBSCORE_CLI_INPUT_LIMIT\\fR",
        "Largest input file in bytes (default 1 GiB for model files, 2 GiB for CSV).",
        ".TP", "\\fBOPENBLAS_NUM_THREADS\\fR, \\fBBLIS_NUM_THREADS\\fR",
        "Threads of the BLAS; set to 1 when giving \\fB\\-\\-threads\\fR.",
        ".SH EXIT STATUS",
        "0 on success, 1 when a file, the data or a library call fails, 2 for a bad command "
        "line. Every failure prints one line on standard error.",
        ".SH SEE ALSO",
        "The libscore documentation (getting started, choosing a sampler, the model file "
        "format) installed with the library's documentation, and the C headers under "
        "\\fIlibscore/\\fR.",
    ]
    with open(output, "w", encoding="utf-8") as f:
        f.write("\n".join(page) + "\n")


if __name__ == "__main__":
    main()
