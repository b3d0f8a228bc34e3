/* daemon.h: segbusd's wiring: one io_uring loop running the registry socket, the ring drain
 * (futex wait on the loop), the pipeline (verify, dedup), per-output batchers, the spool, the
 * outputs, /metrics and /health, and SIGTERM/SIGINT shutdown.
 *
 * On SIGTERM or SIGINT the daemon stops taking registrations, drains what producers committed,
 * closes every batch into the spool, keeps delivering until every output is idle or
 * shutdown_timeout has passed, closes the spool (what is not delivered stays there for the
 * next start) and returns.
 */
#ifndef SEGBUS_DAEMON_DAEMON_H
#define SEGBUS_DAEMON_DAEMON_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

#ifdef __cplusplus
extern "C" {
#endif

struct sb_daemon;

/* Build everything from cfg (which must outlive the daemon): open the spool (recovering it),
 * the registry socket, the outputs, the metrics listener. 0, or -errno with err saying what
 * failed. Blocks briefly (DNS of HTTP outputs, spool recovery). */
int sb_daemon_new(struct sb_daemon **out, const struct sb_config *cfg, char *err, size_t errlen);
/* The spool's max_pending_bytes (group-commit buffer) segbusd uses for cfg. */
uint64_t sb_daemon_spool_pending(const struct sb_config *cfg);
/* Run until a shutdown signal (or sb_daemon_stop) and the drain that follows. 0 when everything
 * was delivered, 1 when the shutdown timeout left work in the spool, -errno on a loop failure. */
int sb_daemon_run(struct sb_daemon *d);
/* Ask for the shutdown sequence (as SIGTERM does). From the loop thread. */
void sb_daemon_stop(struct sb_daemon *d);
void sb_daemon_free(struct sb_daemon *d);

/* The metrics port actually bound (useful with port 0), 0 if none. */
uint16_t sb_daemon_metrics_port(const struct sb_daemon *d);
/* The hub's HTTP input port actually bound, 0 if the input is off. */
uint16_t sb_daemon_hub_port(const struct sb_daemon *d);

#ifdef __cplusplus
}
#endif
#endif
