#include "ckvm.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>

int ckvm_ioctl(int fd, unsigned long request, void *argument) {
    return ioctl(fd, request, argument);
}

int ckvm_ioctl_value(int fd, unsigned long request, unsigned long value) {
    return ioctl(fd, request, value);
}

int ckvm_kick_signal(void) { return SIGRTMIN + 3; }

static void ckvm_ignore_kick(int signo) { (void)signo; }

int ckvm_install_kick_handler(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = ckvm_ignore_kick;
    sigemptyset(&action.sa_mask);
    action.sa_flags = 0;
    if (sigaction(ckvm_kick_signal(), &action, NULL) != 0) return -errno;
    return 0;
}
