"""The report both oracle scripts print: one line per file, ok or FAIL
with the differences under it."""
import os


def check_all(files, diffs_of):
    """diffs_of(rc) lists how pullmail's reading of rc differs from the
    oracle's (RuntimeError: one of them refused the file); returns the
    exit status, 1 if any file differs."""
    failed = 0
    for rc in files:
        try:
            diffs = diffs_of(rc)
        except RuntimeError as e:
            diffs = [str(e)]
        if diffs:
            failed += 1
            print("FAIL %s" % os.path.basename(rc))
            for d in diffs:
                print("    " + d)
        else:
            print("ok   %s" % os.path.basename(rc))
    return 1 if failed else 0
