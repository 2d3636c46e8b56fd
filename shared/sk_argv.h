/*
 * sk_argv - keep secrets out of the process's command line.
 *
 * /proc/<pid>/cmdline (what `ps` shows to every local user) reads the
 * argument strings in place, and forked workers inherit them: once the
 * value of --database-url is copied, overwriting it in argv hides it for
 * the master and every worker forked after.
 */
#ifndef SK_ARGV_H
#define SK_ARGV_H

/* Overwrite, in place, the value of every `flag VALUE` and `flag=VALUE`
 * in argv[1..argc) that holds a password with its masked form
 * (sk_log_mask), NUL-padded to the original length ("*"s when the mask
 * does not fit).  Copy the value first.  Returns how many were seen. */
int sk_argv_scrub(int argc, char **argv, const char *flag);

#endif
