/* The container's vCUDA configuration, written by the node manager (gaia_node) as key=value
 * lines in the file named by GAIA_VCUDA_CONFIG, else /etc/gaia/vcuda.conf (the path docker
 * containers get it at, next to an /etc/ld.so.preload naming the library, so that children whose
 * shell dropped the environment still load both). No file: enabled = 0 and every hook passes
 * straight through to the driver. */
#ifndef VCUDA_CONFIG_H
#define VCUDA_CONFIG_H

#define VCUDA_MAX_DEVICES 16
#define VCUDA_DEFAULT_CONFIG "/etc/gaia/vcuda.conf"

struct vcuda_config {
    long long memory_limit;          /* bytes per device, 0 = no limit */
    int share;                       /* percent of one GPU's time, 1..100 */
    int ceiling;                     /* >= share; elastic mode's upper bound */
    int elastic;                     /* 0 = hard, 1 = elastic */
    char region_path[4096];          /* the container's shared region file */
    char gpu_region_dir[4096];       /* shared by every container on the node's GPUs */
    int device_count;                /* host indices granted (informational) */
    int devices[VCUDA_MAX_DEVICES];
    int enabled;                     /* a config file was found and read */
    char path[4096];                 /* the file it came from (for messages) */
};

/* Reads the config once (path from the environment or the default); errors go to stderr naming
 * the file, line and key, and leave that key at its default. Returns cfg. */
const struct vcuda_config *vcuda_config_load(struct vcuda_config *cfg);

/* Parses one file into cfg; 0 when read, -1 when absent (cfg->enabled stays 0). */
int vcuda_config_read(struct vcuda_config *cfg, const char *path);

/* A byte count: digits with an optional suffix K/M/G/T (powers of 1000), Ki/Mi/Gi/Ti (of 1024).
 * Returns 0 and sets *out, or -1. */
int vcuda_parse_bytes(const char *text, long long *out);

#endif
