// flags.h: a table-driven command-line parser shared by the subcommands.
// Each flag has a type, a target, a default (as the user would type it) and
// a help line; --help prints the table with defaults. Values are parsed
// strictly (whole string, range-checked) so bad values give a one-line error.
#pragma once
#include <stdint.h>

typedef enum { FLAG_INT, FLAG_I64, FLAG_FLOAT, FLAG_STR, FLAG_BOOL } flag_type;

typedef struct {
    const char* name;      // without the leading "--"
    flag_type type;
    void* target;          // int*, int64_t*, float*, const char**, int*
    const char* def;       // default value text ("" for none)
    double lo, hi;         // accepted range for numbers (inclusive)
    const char* help;
    int set;               // set by flags_parse when given on the command line
} flag;

// Applies defaults, then parses argv[1..argc) ("--name value", "--name=value",
// bare "--name" for booleans). Positional arguments are stored in pos (at
// most max_pos), their count in *npos. Returns 0, 1 when --help was printed,
// or -1 after printing a one-line error to stderr.
int flags_parse(flag* f, int nf, int argc, char** argv, const char* usage,
                const char** pos, int max_pos, int* npos);
void flags_help(const flag* f, int nf, const char* usage);
