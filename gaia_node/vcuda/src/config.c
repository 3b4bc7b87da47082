/* vcuda.conf: key=value lines, '#' comments, blank lines ignored.
 *   memory_limit=8Gi   bytes per device the container may allocate (0 or absent: no limit)
 *   share=30           percent of one GPU's compute time (1..100, default 100)
 *   ceiling=60         elastic mode's upper bound (share..100, default share)
 *   mode=hard|elastic
 *   region=/path       the container's shared region file (every process of the container)
 *   gpu_dir=/path      directory shared by every container on these GPUs (elastic demand)
 *   devices=0,3        the node's GPU indices granted (informational)
 */
#define _GNU_SOURCE /* secure_getenv */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void complain(const struct vcuda_config *cfg, int line, const char *key, const char *what,
                     const char *value)
{
    fprintf(stderr, "gaia vcuda: %s line %d: %s: %s (got '%s'); using the default\n", cfg->path,
            line, key, what, value);
}

int vcuda_parse_bytes(const char *text, long long *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long n = strtoull(text, &end, 10);
    if (end == text || errno != 0 || text[0] == '-')
        return -1;
    unsigned long long mult = 1;
    if (*end) {
        const char *units = "KMGTP";
        const char *u = strchr(units, toupper((unsigned char)*end));
        if (u == NULL)
            return -1;
        int power = (int)(u - units) + 1;
        int binary = end[1] == 'i';
        if (end[1 + binary] != '\0')
            return -1;
        for (int i = 0; i < power; i++)
            mult *= binary ? 1024ULL : 1000ULL;
    }
    if (n != 0 && mult > (unsigned long long)LLONG_MAX / n)
        return -1;
    *out = (long long)(n * mult);
    return 0;
}

static int parse_int(const char *text, int lo, int hi, int *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (end == text || *end != '\0' || errno != 0 || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

int vcuda_config_read(struct vcuda_config *cfg, const char *path)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->share = 100;
    cfg->ceiling = -1;
    snprintf(cfg->path, sizeof(cfg->path), "%s", path);
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        cfg->ceiling = cfg->share;
        return -1;
    }
    char buf[8192];
    int line = 0;
    while (fgets(buf, sizeof(buf), f) != NULL) {
        line++;
        char *s = trim(buf);
        if (*s == '\0' || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (eq == NULL) {
            complain(cfg, line, s, "not a key=value line", s);
            continue;
        }
        *eq = '\0';
        char *key = trim(s), *value = trim(eq + 1);
        if (strcmp(key, "memory_limit") == 0) {
            if (vcuda_parse_bytes(value, &cfg->memory_limit) != 0)
                complain(cfg, line, key, "not a byte count", value);
        } else if (strcmp(key, "share") == 0) {
            if (parse_int(value, 1, 100, &cfg->share) != 0)
                complain(cfg, line, key, "not a percentage 1..100", value);
        } else if (strcmp(key, "ceiling") == 0) {
            if (parse_int(value, 1, 100, &cfg->ceiling) != 0)
                complain(cfg, line, key, "not a percentage 1..100", value);
        } else if (strcmp(key, "mode") == 0) {
            if (strcmp(value, "hard") == 0)
                cfg->elastic = 0;
            else if (strcmp(value, "elastic") == 0)
                cfg->elastic = 1;
            else
                complain(cfg, line, key, "not hard or elastic", value);
        } else if (strcmp(key, "region") == 0) {
            snprintf(cfg->region_path, sizeof(cfg->region_path), "%s", value);
        } else if (strcmp(key, "gpu_dir") == 0) {
            snprintf(cfg->gpu_region_dir, sizeof(cfg->gpu_region_dir), "%s", value);
        } else if (strcmp(key, "devices") == 0) {
            cfg->device_count = 0;
            char *save = NULL;
            for (char *tok = strtok_r(value, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                int idx;
                if (cfg->device_count >= VCUDA_MAX_DEVICES || parse_int(trim(tok), 0, 4095, &idx) != 0) {
                    complain(cfg, line, key, "not a list of up to 16 GPU indices", tok);
                    break;
                }
                cfg->devices[cfg->device_count++] = idx;
            }
        } else {
            complain(cfg, line, key, "unknown key", value);
        }
    }
    fclose(f);
    if (cfg->ceiling < cfg->share) {
        if (cfg->ceiling != -1)
            fprintf(stderr, "gaia vcuda: %s: ceiling: %d is below share %d; using the share\n",
                    cfg->path, cfg->ceiling, cfg->share);
        cfg->ceiling = cfg->share;
    }
    if (!cfg->elastic)
        cfg->ceiling = cfg->share;
    cfg->enabled = 1;
    return 0;
}

const struct vcuda_config *vcuda_config_load(struct vcuda_config *cfg)
{
    /* secure_getenv: /etc/ld.so.preload loads the library into setuid programs too, which must not
     * take a config (and so a region file to create) from their caller's environment */
    const char *path = secure_getenv("GAIA_VCUDA_CONFIG");
    if (path == NULL || *path == '\0')
        path = VCUDA_DEFAULT_CONFIG;
    vcuda_config_read(cfg, path);
    return cfg;
}
