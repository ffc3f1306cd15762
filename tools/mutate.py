#!/usr/bin/env python3
"""Mutation testing of libscore: plants each one-line bug of a catalogue in a scratch copy of
the source tree, rebuilds, runs the default test suites and reports whether a test noticed.

    python3 tools/mutate.py                      # the whole catalogue (tools/mutants.json)
    python3 tools/mutate.py --id dpm23-err-half  # one mutant (comma-separated ids)
    python3 tools/mutate.py --layer sampler,rng  # the mutants of some layers
    python3 tools/mutate.py --check              # only check that every mutant applies
    python3 tools/mutate.py --list               # print the catalogue

The source tree (tracked and untracked, not ignored files: uncommitted edits are included) is
copied into a scratch directory once and built once; the tests are run there once unmutated
(they must all pass; their run times order the later runs). Then, for each mutant: the
search text (which must occur exactly once in its file) is replaced, the build is brought up to
date incrementally, and the tests run: first the ones the catalogue names for the mutant, then
the rest of the default suites from the fastest to the slowest, up to -j at a time. The first
failing test (non-zero exit other than 77, or a timeout) kills the mutant and the remaining
tests are not run. The file is then restored. A mutant that no test notices is SURVIVED, or
EQUIVALENT when the catalogue explains why it cannot change any result.

Standard library only. See doc/testing.md.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

LAYERS = ['kernel', 'rng', 'schedule', 'model', 'sde', 'loss', 'train', 'sampler',
          'likelihood', 'io', 'cli']


def die(msg):
    print('mutate.py: ' + msg, file=sys.stderr)
    sys.exit(2)


def load_catalogue(path):
    try:
        with open(path, encoding='utf-8') as f:
            cat = json.load(f)
    except (OSError, ValueError) as e:
        die('cannot read the catalogue %s: %s' % (path, e))
    mutants = cat.get('mutants') if isinstance(cat, dict) else None
    if not isinstance(mutants, list):
        die('%s: expected an object with a list "mutants"' % path)
    seen = set()
    for m in mutants:
        for key in ('id', 'layer', 'file', 'intent', 'search', 'replace'):
            if not isinstance(m.get(key), str) or not m[key]:
                if not (key == 'replace' and m.get(key) == ''):
                    die('mutant %r: field "%s" missing or empty' % (m.get('id'), key))
        if m['id'] in seen:
            die('duplicate mutant id %s' % m['id'])
        seen.add(m['id'])
        if m['layer'] not in LAYERS:
            die('mutant %s: unknown layer %s (one of %s)' % (m['id'], m['layer'], ', '.join(LAYERS)))
        if m['search'] == m['replace']:
            die('mutant %s: search and replace are the same' % m['id'])
        tests = m.get('tests', [])
        if not isinstance(tests, list) or not all(isinstance(t, str) for t in tests):
            die('mutant %s: "tests" must be a list of test names' % m['id'])
    return mutants


def check_applies(root, mutants):
    """Each search text occurs exactly once in its file; returns the list of problems."""
    bad = []
    for m in mutants:
        p = os.path.join(root, m['file'])
        try:
            with open(p, encoding='utf-8') as f:
                text = f.read()
        except OSError as e:
            bad.append('%s: %s' % (m['id'], e))
            continue
        n = text.count(m['search'])
        if n != 1:
            bad.append('%s: the search text occurs %d times in %s' % (m['id'], n, m['file']))
    return bad


def source_files(root):
    out = subprocess.run(['git', '-C', root, 'ls-files', '-z', '--cached', '--others',
                          '--exclude-standard'], capture_output=True, check=False)
    if out.returncode != 0:
        die('git ls-files failed in %s: %s' % (root, out.stderr.decode(errors='replace')))
    return [p for p in out.stdout.decode().split('\0') if p]


def copy_tree(root, dest):
    """Copies the source files into dest; an existing copy gets only the files that differ."""
    changed = 0
    for rel in source_files(root):
        src = os.path.join(root, rel)
        if not os.path.isfile(src):
            continue  # deleted in the work tree
        dst = os.path.join(dest, rel)
        if os.path.isfile(dst):
            with open(src, 'rb') as a, open(dst, 'rb') as b:
                if a.read() == b.read():
                    continue
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copyfile(src, dst)
        changed += 1
    return changed


def run_quiet(cmd, log, cwd=None):
    with open(log, 'ab') as f:
        f.write(('$ ' + ' '.join(cmd) + '\n').encode())
        f.flush()
        return subprocess.run(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT).returncode


def default_tests(build, exclude_suites):
    out = subprocess.run(['meson', 'introspect', '--tests', build], capture_output=True,
                         check=False)
    if out.returncode != 0:
        die('meson introspect --tests failed: ' + out.stderr.decode(errors='replace'))
    tests = []
    for t in json.loads(out.stdout.decode()):
        suites = [s.split(':', 1)[-1] for s in t.get('suite', [])]
        if any(s in exclude_suites for s in suites):
            continue
        tests.append({'name': t['name'], 'cmd': t['cmd'], 'env': t.get('env') or {},
                      'cwd': t.get('workdir') or build, 'timeout': t.get('timeout') or 30,
                      'parallel': t.get('is_parallel', True), 'suites': suites,
                      'depends': t.get('depends') or []})
    return tests


class Runner:
    """Runs a list of tests up to jobs at a time, stopping at the first failure."""

    def __init__(self, jobs, logdir):
        self.jobs = jobs
        self.logdir = logdir

    def _start(self, t, tag, timeout):
        env = dict(os.environ)
        env.update(t['env'])
        log = os.path.join(self.logdir, '%s--%s.log' % (tag, t['name'].replace('/', '_')))
        f = open(log, 'wb')
        p = subprocess.Popen(t['cmd'], cwd=t['cwd'], env=env, stdout=f, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        return {'test': t, 'proc': p, 'file': f, 'log': log, 'start': time.monotonic(),
                'timeout': timeout}

    @staticmethod
    def _stop(r):
        try:
            os.killpg(r['proc'].pid, signal.SIGKILL)
        except OSError:
            pass
        r['proc'].wait()
        r['file'].close()

    def run(self, tests, tag, timeouts, stop_first=True):
        """Returns (first failure or None, {name: seconds}); a failure is (name, why, log)."""
        queue = list(tests)
        running = []
        times = {}
        failure = None
        while queue or running:
            while queue and len(running) < self.jobs and failure is None:
                nxt = queue[0]
                if not nxt['parallel'] and running:
                    break
                if running and not running[0]['test']['parallel']:
                    break
                queue.pop(0)
                running.append(self._start(nxt, tag, timeouts[nxt['name']]))
            time.sleep(0.05)
            for r in list(running):
                rc = r['proc'].poll()
                elapsed = time.monotonic() - r['start']
                why = None
                if rc is None:
                    if elapsed <= r['timeout']:
                        continue
                    self._stop(r)
                    why = 'timeout after %.0f s' % r['timeout']
                else:
                    r['file'].close()
                    if rc not in (0, 77):
                        why = 'exit status %d' % rc
                running.remove(r)
                times[r['test']['name']] = elapsed
                if why is not None and failure is None:
                    failure = (r['test']['name'], why, r['log'])
                    if stop_first:
                        queue = []
                        for o in running:
                            self._stop(o)
                        running = []
                        break
        return failure, times


def target_outputs(build):
    """Build-directory-relative outputs of every target id (for ninja)."""
    out = subprocess.run(['meson', 'introspect', '--targets', build], capture_output=True,
                         check=False)
    if out.returncode != 0:
        die('meson introspect --targets failed: ' + out.stderr.decode(errors='replace'))
    return {t['id']: [os.path.relpath(f, build) for f in t.get('filename', [])]
            for t in json.loads(out.stdout.decode())}


def run_mutant(m, tests, durations, timeouts, runner, build, jobs, blog, outputs):
    """Builds and tests the applied mutant; returns (status, killed-by or reason).

    The tests the catalogue names for the mutant run first, after building only what they
    depend on; the full build and the other tests follow only when those pass."""
    ninja = ['ninja', '-C', build, '-j', str(jobs)]
    first = [t for t in tests if t['name'] in m.get('tests', [])]
    phases = []
    if first:
        want = []
        for t in first:
            for dep in t.get('depends', []):
                want += outputs.get(dep, [])
        if want:
            phases.append((ninja + sorted(set(want)), order_tests(first, m['tests'], durations)))
        else:
            first = []
    rest = [t for t in tests if t not in first]
    phases.append((ninja, order_tests(rest, [], durations)))
    for cmd, group in phases:
        if run_quiet(cmd, blog) != 0:
            return 'BUILD-FAIL', 'see ' + blog
        fail, _ = runner.run(group, m['id'], timeouts)
        if fail is not None:
            return 'killed', fail[0] + ('' if fail[1].startswith('exit') else ' (%s)' % fail[1])
    if m.get('equivalent'):
        return 'EQUIVALENT', m['equivalent']
    return 'SURVIVED', ''


def order_tests(tests, first, durations):
    by_name = {t['name']: t for t in tests}
    head = [by_name[n] for n in first if n in by_name]
    rest = [t for t in tests if t['name'] not in first]
    rest.sort(key=lambda t: (durations.get(t['name'], 1e9), t['name']))
    return head + rest


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--catalogue', default=os.path.join(here, 'mutants.json'))
    ap.add_argument('--id', default='', help='comma-separated mutant ids to run')
    ap.add_argument('--layer', default='', help='comma-separated layers to run')
    ap.add_argument('-j', '--jobs', type=int, default=2,
                    help='parallel build jobs and tests run at once (default 2)')
    ap.add_argument('--workdir', default='',
                    help='scratch directory (default: a new temporary one, removed at the end)')
    ap.add_argument('--keep', action='store_true', help='keep the scratch directory and logs')
    ap.add_argument('--reuse', action='store_true',
                    help='reuse the copy and build of an earlier run in --workdir (only the '
                         'files that changed since are copied and rebuilt)')
    ap.add_argument('--no-baseline', action='store_true',
                    help='skip the unmutated test run (meson\'s timeouts, catalogue order): '
                         'for quick checks of single mutants after a full run')
    ap.add_argument('--timeout-factor', type=float, default=5.0,
                    help='per-test timeout: this times the unmutated run time, at least '
                         '--timeout-min seconds, at most the test\'s own meson timeout')
    ap.add_argument('--timeout-min', type=float, default=30.0)
    ap.add_argument('--exclude-suite', default='slow,digits',
                    help='comma-separated suites left out (default: slow,digits, like meson test)')
    ap.add_argument('--meson-args', default='', help='extra arguments of meson setup')
    ap.add_argument('--report', default='', help='also write the table (markdown) to this file')
    ap.add_argument('--check', action='store_true',
                    help='only check that every selected mutant applies exactly once')
    ap.add_argument('--list', action='store_true', help='print the catalogue and exit')
    args = ap.parse_args()
    if args.jobs < 1:
        die('-j must be at least 1')

    mutants = load_catalogue(args.catalogue)
    if args.id:
        ids = [s.strip() for s in args.id.split(',') if s.strip()]
        unknown = [i for i in ids if i not in {m['id'] for m in mutants}]
        if unknown:
            die('unknown mutant id(s): ' + ', '.join(unknown))
        mutants = [m for m in mutants if m['id'] in ids]
    if args.layer:
        layers = [s.strip() for s in args.layer.split(',') if s.strip()]
        for l in layers:
            if l not in LAYERS:
                die('unknown layer %s' % l)
        mutants = [m for m in mutants if m['layer'] in layers]
    if args.list:
        for m in mutants:
            eq = '  [equivalent: %s]' % m['equivalent'] if m.get('equivalent') else ''
            print('%-24s %-10s %-32s %s%s' % (m['id'], m['layer'], m['file'], m['intent'], eq))
        return 0
    bad = check_applies(root, mutants)
    if bad:
        die('mutants that do not apply:\n  ' + '\n  '.join(bad))
    if args.check:
        counts = {}
        for m in mutants:
            counts[m['layer']] = counts.get(m['layer'], 0) + 1
        print('%d mutants apply (%s)' % (len(mutants), ', '.join(
            '%s %d' % (l, counts[l]) for l in LAYERS if l in counts)))
        return 0
    if not mutants:
        die('no mutant selected')

    t_begin = time.monotonic()
    scratch = args.workdir or tempfile.mkdtemp(prefix='libscore-mutate.')
    src = os.path.join(scratch, 'src')
    build = os.path.join(scratch, 'build')
    logdir = os.path.join(scratch, 'logs')
    if os.path.exists(src) and not args.reuse:
        die('%s already holds a source copy; give an empty --workdir or --reuse' % scratch)
    if args.reuse and not os.path.isdir(os.path.join(build, 'meson-info')):
        die('--reuse: no earlier build in %s' % build)
    os.makedirs(logdir, exist_ok=True)
    setup_log = os.path.join(logdir, 'setup.log')
    print('scratch copy in %s' % scratch, flush=True)
    n_changed = copy_tree(root, src)
    if args.reuse:
        print('%d files changed since the last run' % n_changed, flush=True)
    elif run_quiet(['meson', 'setup', build, src] + args.meson_args.split(), setup_log) != 0:
        die('meson setup failed, see %s' % setup_log)
    if run_quiet(['ninja', '-C', build, '-j', str(args.jobs)], setup_log) != 0:
        die('the unmutated build failed, see %s' % setup_log)
    t_built = time.monotonic()
    print('built in %.0f s' % (t_built - t_begin), flush=True)

    tests = default_tests(build, set(args.exclude_suite.split(',')))
    runner = Runner(args.jobs, logdir)
    base_timeouts = {t['name']: t['timeout'] for t in tests}
    if args.no_baseline:
        durations = {}
        print('unmutated test run skipped', flush=True)
    else:
        fail, durations = runner.run(order_tests(tests, [], {}), 'baseline', base_timeouts,
                                     stop_first=False)
        if fail is not None:
            die('the unmutated tree fails %s (%s), see %s' % fail)
        print('%d tests pass unmutated in %.0f s' % (len(tests), time.monotonic() - t_built),
              flush=True)
    timeouts = {t['name']: min(float(t['timeout']),
                               max(args.timeout_min,
                                   args.timeout_factor * durations.get(t['name'], 1e9)))
                for t in tests}

    outputs = target_outputs(build)
    results = []
    for k, m in enumerate(mutants):
        path = os.path.join(src, m['file'])
        with open(path, encoding='utf-8') as f:
            orig = f.read()
        t0 = time.monotonic()
        try:
            with open(path, 'w', encoding='utf-8') as f:
                f.write(orig.replace(m['search'], m['replace'], 1))
            blog = os.path.join(logdir, '%s--build.log' % m['id'])
            status, by = run_mutant(m, tests, durations, timeouts, runner, build, args.jobs,
                                    blog, outputs)
        finally:
            with open(path, 'w', encoding='utf-8') as f:
                f.write(orig)
            os.utime(path)  # newer than the mutated object: the next build recompiles it
        secs = time.monotonic() - t0
        if status == 'killed' and m.get('equivalent'):
            by += ' (listed as equivalent!)'
        results.append((m, status, by, secs))
        print('[%2d/%d] %-26s %-10s %5.0f s  %s' % (k + 1, len(mutants), m['id'],
              status if status != 'killed' else 'killed by', secs, by), flush=True)

    total = time.monotonic() - t_begin
    print_table(results, total, args.report)
    if not args.keep and not args.workdir:
        shutil.rmtree(scratch, ignore_errors=True)
    else:
        print('logs in %s' % logdir)
    return 1 if any(r[1] in ('SURVIVED', 'BUILD-FAIL') for r in results) else 0


def print_table(results, total, report):
    killed = sum(1 for r in results if r[1] == 'killed')
    survived = sum(1 for r in results if r[1] == 'SURVIVED')
    equiv = sum(1 for r in results if r[1] == 'EQUIVALENT')
    bfail = sum(1 for r in results if r[1] == 'BUILD-FAIL')
    scored = killed + survived
    score = 100.0 * killed / scored if scored else 100.0
    lines = ['| id | layer | file | intent | result |', '|---|---|---|---|---|']
    for m, status, by, _ in results:
        res = 'killed by %s' % by if status == 'killed' else (
            status + (': ' + by if by else ''))
        cells = [m['id'], m['layer'], m['file'], m['intent'], res]
        lines.append('| %s |' % ' | '.join(c.replace('|', '\\|') for c in cells))
    summary = ('%d mutants: %d killed, %d survived, %d equivalent, %d build failures; '
               'score %.1f%% (killed / (killed + survived)); %.1f min' %
               (len(results), killed, survived, equiv, bfail, score, total / 60.0))
    print()
    print('\n'.join(lines))
    print()
    print(summary)
    if report:
        with open(report, 'w', encoding='utf-8') as f:
            f.write('\n'.join(lines) + '\n\n' + summary + '\n')


if __name__ == '__main__':
    sys.exit(main())
