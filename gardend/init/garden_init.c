/* garden-init: PID 1 of every gardend container.
 *
 * It only reaps orphans and waits to be killed, so that the container's namespaces
 * outlive the processes that clients run in it. SIGTERM and SIGINT are ignored: the
 * container ends when gardend destroys it with SIGKILL.
 */
#include <errno.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void) {
    sigset_t set;
    sigfillset(&set);
    sigprocmask(SIG_BLOCK, &set, NULL);
    for (;;) {
        int sig;
        if (sigwait(&set, &sig) != 0) {
            continue;
        }
        if (sig == SIGCHLD) {
            while (waitpid(-1, NULL, WNOHANG) > 0) {
            }
        }
    }
}
