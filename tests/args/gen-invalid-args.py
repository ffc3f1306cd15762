#!/usr/bin/env python3
"""The invalid-argument table of every export (see test-invalid-args.c).

usage: gen-invalid-args.py --check ROWS MAPFILE HEADER...   (the "invalid-args-table" test)
       gen-invalid-args.py --gen OUT.c ROWS MAPFILE HEADER... (the C rows, at build time)

ROWS has one line per export:  NAME TOKEN...  where a TOKEN is
  arg=EXPR        a valid value for arg (C, no spaces; F-> names the fixtures), replacing the
                  default chosen from its type (DEFAULTS below)
  arg:VALUE>WANT  a case: arg = VALUE, every other argument valid, expect WANT
  valid>WANT      what the call with every argument valid gives (int functions; default OK:
                  the baseline that makes each other case test one argument)
  null>WANT       what NULL gives for every pointer argument without its own arg:NULL case
  pre=STMT        a C statement run on the fresh fixtures before each call of the row
and WANT is a status name without SCORE_/SCORE_E_ (OK, DONE, INVAL, RANGE, ...) for functions
returning int; a C value for size_t / uint64_t / uint32_t results; "STRING", NULL or NONEMPTY for
strings; NULL or NONNULL for pointers; void for void functions.
Lines "%edges TYPE ARGNAME CASE..." give the cases of every numeric argument of that type and
name that has no case in its row. '#' starts a comment.

Every pointer argument needs a NULL case (int functions default to INVAL, void functions to
just being called), every numeric argument at least one case: --check fails otherwise, when a
row has the wrong number of arguments, and when an export has no row.
"""
import re
import sys

NUMERIC = {"size_t", "double", "int", "int64_t", "uint64_t", "uint32_t"}
OBJECTS = {"schedule", "model", "sde", "rng", "loss", "optimizer", "ema", "trainer", "step",
           "control", "evolve", "sampler", "likelihood", "genmodel", "comm"}
STATUSES = {"OK": "SCORE_OK", "DONE": "SCORE_DONE"}


def parse_headers(paths):
    protos = {}
    for p in paths:
        text = open(p).read()
        text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
        text = re.sub(r"//[^\n]*", "", text)
        text = re.sub(r"^\s*#(?:[^\n]*\\\n)*[^\n]*", "", text, flags=re.M)
        for m in re.finditer(r"\bSCORE_API\b([^;{]*?)\(([^;{]*?)\)\s*(?:SCORE_\w+(?:\([^)]*\))?\s*)*;",
                             text, re.S):
            pre = " ".join(re.sub(r"\bSCORE_\w+\b", "", m.group(1)).split())
            name = re.search(r"(\w+)$", pre).group(1)
            ret = norm(pre[:-len(name)])
            args = []
            a = " ".join(m.group(2).split())
            if a != "void":
                for x in a.split(","):
                    x = x.strip()
                    am = re.match(r"(.*?)(\w+)$", x)
                    args.append((am.group(1).strip(), am.group(2)))
            protos[name] = (ret, args)
    return protos


def norm(t):
    """'const score_model *const *' -> 'score_model**'; keeps whether the base is const apart."""
    return re.sub(r"\s+", "", re.sub(r"\bconst\b", "", t))


def parse_map(path):
    text = re.sub(r"#.*", "", open(path).read())
    names = set()
    for block in re.findall(r"global:(.*?)(?:local:|\})", text, re.S):
        names.update(re.findall(r"([A-Za-z_]\w*)\s*;", block))
    return names


def is_pointer(ctype):
    return "*" in ctype or ctype.endswith("_fn")


def default_value(ctype, name):
    """A valid value for an argument, from its type (and a few names)."""
    const = ctype.startswith("const")
    t = norm(ctype)
    m = re.fullmatch(r"score_(\w+)\*", t)
    if m and m.group(1) in OBJECTS:
        return "F->" + m.group(1)
    if t == "score_step_type*":
        return "F->stype" if const else "F->utype"
    if t == "score_model**" and name == "models":
        return "F->models"
    m = re.fullmatch(r"score_(\w+)\*\*", t)
    if m:
        return "&F->o_" + m.group(1)
    table = {
        "float*": "F->f", "double*": "F->d", "char*": '"x"', "char**": "&F->s",
        "size_t*": "F->widths" if name == "widths" else "&F->z", "int*": "&F->i",
        "int64_t*": "&F->i64", "uint64_t*": "&F->u64", "uint32_t*": "F->u32", "uint8_t*": "F->b",
        "void**": "&F->vb", "void*": "NULL" if name == "user_data" else "F->b",
        "size_t": {"dim": "2", "n": "4"}.get(name, "1"), "double": "0.5", "int": "0",
        "int64_t": "0", "uint64_t": "1", "uint32_t": "0",
        "score_model_fn": "fx_model_fn", "score_model_jvp_fn": "fx_jvp_fn",
        "score_model_divergence_fn": "fx_div_fn", "score_model_param_fn": "fx_param_fn",
        "score_model_param_vjp_fn": "fx_param_vjp_fn", "score_sampler_progress_fn": "fx_sprog",
        "score_sampler_hook_fn": "fx_hook", "score_step_apply_fn": "fx_apply",
        "score_step_alloc_fn": "fx_alloc", "score_step_reset_fn": "fx_reset",
        "score_step_free_fn": "fx_sfree", "score_trainer_progress_fn": "fx_tprog",
        "score_comm_allgather_fn": "fx_comm_ag", "score_comm_bcast_fn": "fx_comm_bc",
    }
    return table.get(t)


def parse_rows(path):
    rows, edges, errors = {}, {}, []
    for ln, line in enumerate(open(path), 1):
        line = line.split("#", 1)[0].strip() if not line.lstrip().startswith("%") else \
            line.split(" #", 1)[0].strip()
        if not line:
            continue
        tok = line.split()
        if tok[0] == "%edges":
            edges[(tok[1], tok[2])] = [parse_case(c) for c in tok[3:]]
            continue
        if tok[0] in rows:
            errors.append(f"{path}:{ln}: second row for {tok[0]}")
        row = {"line": ln, "vals": {}, "cases": [], "null": None, "pre": [], "valid": None}
        for t in tok[1:]:
            if t.startswith("null>"):
                row["null"] = t[5:]
            elif t.startswith("valid>"):
                row["valid"] = t[6:]
            elif t.startswith("pre="):
                row["pre"].append(t[4:])
            elif re.match(r"\w+=", t):
                k, v = t.split("=", 1)
                row["vals"][k] = v
            elif re.match(r"\w+:", t):
                k, rest = t.split(":", 1)
                v, w = parse_case(rest)
                row["cases"].append((k, v, w))
            else:
                errors.append(f"{path}:{ln}: cannot read token '{t}'")
        rows[tok[0]] = row
    return rows, edges, errors


def parse_case(s):
    v, _, w = s.rpartition(">")
    return v, w


def plan(name, proto, row, edges):
    """The list of (label, args, want) of one export, or an error string."""
    ret, args = proto
    names = [a[1] for a in args]
    for k in row["vals"]:
        if k not in names:
            return f"{name}: row gives a value for '{k}', which is not an argument ({', '.join(names)})"
    for k, _, _ in row["cases"]:
        if k not in names:
            return f"{name}: row has a case for '{k}', which is not an argument ({', '.join(names)})"
    valid = []
    unresolved.clear()
    for ctype, an in args:
        v = row["vals"].get(an, default_value(ctype, an))
        if v is None:
            return f"{name}: no default value for '{ctype} {an}': give {an}=EXPR"
        valid.append(v)
    cases = []
    if args and ret == "int":  # the baseline: every argument valid
        cases.append(("all valid", list(valid), row["valid"] or "OK"))
    for i, (ctype, an) in enumerate(args):
        own = [(v, w) for k, v, w in row["cases"] if k == an]
        if is_pointer(ctype):
            if not any(v == "NULL" for v, _ in own):
                w = row["null"] or ("INVAL" if ret == "int" else "void" if ret == "void" else None)
                if w is None:
                    return f"{name}: what does NULL for '{an}' return? give null>VALUE or {an}:NULL>VALUE"
                own.insert(0, ("NULL", w))
        elif norm(ctype) in NUMERIC:
            if not own:
                own = edges.get((norm(ctype), an), [])
            if not own:
                return f"{name}: no range-edge case for the numeric argument '{ctype} {an}'"
        for v, w in own:
            if w == "?":
                unresolved.append(f"{name}: case {an}={v} has no expectation yet ('?')")
            a = list(valid)
            a[i] = v
            cases.append((f"{an}={v}", a, w))
    if not args:
        if ret == "void":
            return [("()", [], "void")]
        if row["null"] is None and not row["cases"]:
            return f"{name}: no argument; give the documented result with null>VALUE"
        if row["null"] == "?":
            unresolved.append(f"{name}: the result has no expectation yet ('?')")
        cases.append(("()", [], row["null"]))
    return cases


unresolved = []


def c_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def gen_call(name, ret, label, args, want, pre):
    call = f"{name}({', '.join(args)})"
    lab = c_string(label)
    body = "".join(f"        {p};\n" for p in pre)
    if want == "?":  # while writing a row: print what the call gives (never left in the table)
        if ret == "int":
            return body + f"        obs_int({c_string(name)}, {lab}, {call});\n"
        if ret == "void":
            return body + f"        {call};\n"
        if ret == "char*":
            return body + f"        obs_str({c_string(name)}, {lab}, {call});\n"
        if ret.endswith("*"):
            return body + f"        obs_str({c_string(name)}, {lab}, ({call}) ? \"NONNULL\" : \"NULL\");\n"
        return body + f"        obs_u64({c_string(name)}, {lab}, (uint64_t)({call}));\n"
    if ret == "void":
        return body + f"        {call};\n"
    if ret == "int":
        st = want if re.fullmatch(r"-?\d+", want) else STATUSES.get(want, "SCORE_E_" + want)
        return body + f"        chk_int({c_string(name)}, {lab}, {call}, {st});\n"
    if ret == "char*":
        if want == "NONEMPTY":
            return body + f"        chk_nonempty({c_string(name)}, {lab}, {call});\n"
        return body + f"        chk_str({c_string(name)}, {lab}, {call}, {want});\n"
    if ret.endswith("*"):
        return body + f"        chk_ptr({c_string(name)}, {lab}, {call}, {int(want == 'NONNULL')});\n"
    return body + f"        chk_u64({c_string(name)}, {lab}, (uint64_t)({call}), (uint64_t)({want}));\n"


def main():
    mode = sys.argv[1]
    if mode == "--gen":
        out, rows_path, map_path, headers = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
    else:
        out, rows_path, map_path, headers = None, sys.argv[2], sys.argv[3], sys.argv[4:]
    protos = parse_headers(headers)
    exports = parse_map(map_path)
    rows, edges, errors = parse_rows(rows_path)
    for n in sorted(exports - set(rows)):
        errors.append(f"{n}: exported but has no row in {rows_path}")
    for n in sorted(set(rows) - exports):
        errors.append(f"{n}: has a row but is not exported")
    plans = {}
    for n in sorted(exports & set(rows)):
        if n not in protos:
            errors.append(f"{n}: no declaration found in the headers")
            continue
        p = plan(n, protos[n], rows[n], edges)
        if isinstance(p, str):
            errors.append(p)
        else:
            plans[n] = p
            errors.extend(unresolved)
    if mode == "--check":
        for e in errors:
            print(e)
        ncases = sum(len(p) for p in plans.values())
        print(f"{len(exports)} exports, {len(rows)} rows, {ncases} cases, {len(errors)} problem(s)")
        return 1 if errors else 0
    # --gen: the rows that can be generated (the check test reports the others)
    lines = ["/* Generated by gen-invalid-args.py from invalid-args.rows: do not edit. */"]
    for n, cases in plans.items():
        ret = protos[n][0]
        lines.append(f"static void row_{n}(void)\n{{")
        for label, args, want in cases:
            lines.append("    FX_BEGIN")
            lines.append(gen_call(n, ret, label, args, want, rows[n]["pre"]).rstrip("\n"))
            lines.append("    FX_END")
        lines.append("}")
    lines.append("static const struct { const char *name; void (*run)(void); } rows[] = {")
    for n in plans:
        lines.append(f"    {{{c_string(n)}, row_{n}}},")
    lines.append("};")
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
