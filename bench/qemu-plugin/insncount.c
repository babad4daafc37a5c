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
 * as "insns TOTAL" and "vcpus N" lines.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static void on_guest_exit(qemu_plugin_id_t id, void *udata)
{
    uint64_t total = __atomic_load_n(&overflow, __ATOMIC_RELAXED);
    unsigned int used = 0;
    FILE *f = stderr;
    (void)id;
    (void)udata;
    for (unsigned int i = 0; i < MAX_VCPUS; i++) {
        uint64_t n = __atomic_load_n(&counters[i].insns, __ATOMIC_RELAXED);
        if (n != 0) {
            total += n;
            used++;
        }
    }
    if (out_path != NULL) {
        f = fopen(out_path, "w");
        if (f == NULL) {
            f = stderr;
        }
    }
    fprintf(f, "insns %" PRIu64 "\nvcpus %u\n", total, used);
    if (f != stderr) {
        fclose(f);
    }
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                           int argc, char **argv)
{
    (void)info;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "out=", 4) == 0) {
            out_path = strdup(argv[i] + 4);
        } else {
            fprintf(stderr, "insncount: unknown argument %s (only out=FILE)\n", argv[i]);
            return -1;
        }
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_block_translate);
    qemu_plugin_register_atexit_cb(id, on_guest_exit, NULL);
    return 0;
}
