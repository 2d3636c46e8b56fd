#include "wfcount.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void wf_count(sk_ctx_t *ctx, const char *key)
{
    const char *file = getenv("STEPKIT_TEST_COUNTS");
    char line[256];
    int n, fd;

    if (file == NULL || *file == '\0')
        return;
    n = snprintf(line, sizeof(line), "%s %s\n", sk_run_id(ctx), key);
    if (n < 0 || (size_t)n >= sizeof(line))
        abort();
    fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        abort();
    if (write(fd, line, (size_t)n) != n)
        abort();
    close(fd);
}

int wf_counted(sk_ctx_t *ctx, const char *key)
{
    const char *file = getenv("STEPKIT_TEST_COUNTS");
    char want[256], line[256];
    FILE *f;
    int n = 0;

    if (file == NULL || *file == '\0')
        return 0;
    snprintf(want, sizeof(want), "%s %s\n", sk_run_id(ctx), key);
    f = fopen(file, "re");
    if (f == NULL)
        return 0;
    while (fgets(line, sizeof(line), f) != NULL)
        n += strcmp(line, want) == 0;
    fclose(f);
    return n;
}
