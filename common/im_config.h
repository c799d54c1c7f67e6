/* im_config: command-line flags with IMSPLIT_* environment fallbacks.
 *
 * Each option has a long flag (--session-expires) and an environment name
 * (IMSPLIT_SESSION_EXPIRES). Precedence: flag, then environment, then the
 * default already in the destination. Repeatable options (IM_OPT_LIST) collect
 * every flag; from the environment they take a comma-separated list.
 * Errors (unknown flag, missing value, bad number, out of range) are reported
 * in `err` and make im_config_parse return -EINVAL; nothing is printed. */
#ifndef IM_CONFIG_H
#define IM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    IM_OPT_STRING, /* dest: const char ** (points into argv/env or default) */
    IM_OPT_UINT,   /* dest: uint32_t *, checked against [min, max] */
    IM_OPT_BOOL,   /* dest: bool *; flag takes no value; env: 1/0/true/false */
    IM_OPT_LIST,   /* dest: im_strlist_t * */
} im_opt_type_t;

#define IM_STRLIST_MAX 8
typedef struct {
    const char *items[IM_STRLIST_MAX];
    size_t count;
    char *env_copy; /* owned copy of the env value the items point into */
} im_strlist_t;

typedef struct {
    const char *name; /* long flag without dashes, e.g. "session-expires" */
    im_opt_type_t type;
    void *dest;
    uint32_t min, max; /* IM_OPT_UINT only */
    const char *help;
} im_opt_t;

/* Parses argv (argv[0] skipped) and then the environment for options not
 * given as flags. `envp` may be NULL (then getenv is used). Stops at "--";
 * non-option arguments are left in positional[] (up to *npositional, which is
 * updated), or rejected if positional is NULL. */
int im_config_parse(const im_opt_t *opts, size_t nopts, int argc,
                    char **argv, const char **positional, size_t *npositional,
                    char *err, size_t err_size);
/* Env name for an option name: "session-expires" -> "IMSPLIT_SESSION_EXPIRES" */
void im_config_env_name(const char *name, char *buf, size_t size);
/* Prints usage from the table to the stream (FILE *). */
void im_config_usage(void *stream, const char *prog, const im_opt_t *opts,
                     size_t nopts);
void im_strlist_free(im_strlist_t *l);

/* Splits "host:port" / "[v6]:port" into host (no brackets) and port.
 * Returns 0 or -EINVAL. */
int im_config_split_hostport(const char *s, char *host, size_t host_size,
                             unsigned *port);

#endif
