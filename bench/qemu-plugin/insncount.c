/*
 * insncount: a QEMU TCG plugin that counts the guest instructions a program executes
 * under qemu-user, so the benchmark can compare servers built for router CPUs by work
 * done rather than by emulated time.
 *
 *   qemu-mips -plugin ./libinsncount.so,out=/tmp/count.txt PROGRAM ...
 *
 * Each translated block gets an execution callback carrying its instruction count; the
 * callback adds it to the counter of the vCPU (in qemu-user: the guest thread) running it.
 * One counter per vCPU and one writer per counter, so no atomics are needed and no count
 * is lost when guest threads run in parallel (a single shared inline counter would race).
 * At exit the counters are summed and written to the file named by out= (stderr if none)
 * as "insns TOTAL" and "vcpus N" lines. With every=MS a plugin thread also writes the
 * running total to that file every MS milliseconds (write to a temporary, then rename), so
 * the count can be read at a chosen moment, e.g. when a server's work is done, even if
 * the guest is then killed and never reaches its exit.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

/* Guest threads beyond this many share one overflow slot, added to atomically. */
#define MAX_VCPUS 4096

/* Padded to a cache line each, so threads do not bounce each other's lines. */
struct slot {
    uint64_t insns;
    uint8_t pad[56];
};

static struct slot counters[MAX_VCPUS];
static uint64_t overflow;
static char *out_path;
static long every_ms;

static void on_block_exec(unsigned int vcpu, void *udata)
{
    uint64_t n = (uint64_t)(uintptr_t)udata;
    if (vcpu < MAX_VCPUS) {
        counters[vcpu].insns += n;
    } else {
        __atomic_fetch_add(&overflow, n, __ATOMIC_RELAXED);
    }
}

static void on_block_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    size_t n = qemu_plugin_tb_n_insns(tb);
    (void)id;
    qemu_plugin_register_vcpu_tb_exec_cb(tb, on_block_exec, QEMU_PLUGIN_CB_NO_REGS,
                                         (void *)(uintptr_t)n);
}

/* Sum of all counters so far; exact once the guest threads have stopped. */
static uint64_t total_insns(unsigned int *used)
{
    uint64_t total = __atomic_load_n(&overflow, __ATOMIC_RELAXED);
    *used = 0;
    for (unsigned int i = 0; i < MAX_VCPUS; i++) {
        uint64_t n = __atomic_load_n(&counters[i].insns, __ATOMIC_RELAXED);
        if (n != 0) {
            total += n;
            (*used)++;
        }
    }
    return total;
}

/* Writes the report to out_path through a temporary file, so readers never see half. */
static void write_report(void)
{
    unsigned int used;
    uint64_t total = total_insns(&used);
    if (out_path == NULL) {
        fprintf(stderr, "insns %" PRIu64 "\nvcpus %u\n", total, used);
        return;
    }
    size_t len = strlen(out_path) + 5;
    char *tmp = malloc(len);
    if (tmp == NULL) {
        return;
    }
    snprintf(tmp, len, "%s.tmp", out_path);
    FILE *f = fopen(tmp, "w");
    if (f != NULL) {
        fprintf(f, "insns %" PRIu64 "\nvcpus %u\n", total, used);
        if (fclose(f) == 0) {
            rename(tmp, out_path);
        }
    }
    free(tmp);
}

static void *snapshot_loop(void *arg)
{
    struct timespec period = { every_ms / 1000, (every_ms % 1000) * 1000000L };
    (void)arg;
    for (;;) {
        nanosleep(&period, NULL);
        write_report();
    }
    return NULL;
}

static void on_guest_exit(qemu_plugin_id_t id, void *udata)
{
    (void)id;
    (void)udata;
    write_report();
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                           int argc, char **argv)
{
    (void)info;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "out=", 4) == 0) {
            out_path = strdup(argv[i] + 4);
        } else if (strncmp(argv[i], "every=", 6) == 0) {
            every_ms = strtol(argv[i] + 6, NULL, 10);
        } else {
            fprintf(stderr, "insncount: unknown argument %s (out=FILE, every=MS)\n", argv[i]);
            return -1;
        }
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_block_translate);
    qemu_plugin_register_atexit_cb(id, on_guest_exit, NULL);
    if (every_ms > 0) {
        pthread_t thread;
        if (out_path == NULL || pthread_create(&thread, NULL, snapshot_loop, NULL) != 0) {
            fprintf(stderr, "insncount: every= needs out= and a thread\n");
            return -1;
        }
        pthread_detach(thread);
    }
    return 0;
}
