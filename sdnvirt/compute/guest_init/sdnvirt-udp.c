/*
 * sdnvirt-udp: the UDP end of sdnvirt's traffic checks, in qemu guests (busybox has no UDP tool).
 * Built statically by sdnvirt/compute/image.py; sdnvirt/lab/traffic_peer.py is its Python twin in
 * netns guests, so either end of an exchange may be either kind of guest.
 *
 *   sdnvirt-udp echo PORT SECONDS
 *       Prints "ready" once bound, then sends every datagram back to its sender, until none
 *       came for SECONDS; prints "echoed N".
 *   sdnvirt-udp send HOST PORT COUNT SIZE [WAIT_MS]
 *       Sends COUNT numbered datagrams of SIZE bytes, one after the other, each as soon as the
 *       previous one's echo is back or WAIT_MS (default 1000) have passed, and gives up after
 *       GIVE_UP datagrams in a row without their echo (a dead path); prints one line:
 *       "sent=N echoed=N corrupt=N size=N ms=N", where echoed counts the datagrams whose echo
 *       came back byte-identical (each once) and corrupt the echoes that match none.
 *
 * Datagram n (from 0) holds n as 4 bytes, big-endian, then at each offset i from 4 the byte
 * (n * 131 + i * 7) mod 256: every datagram differs from every other, and a flipped bit
 * anywhere shows. Exit status: 0 when it ran (the figures tell how well), 1 when a socket
 * failed, 2 for wrong arguments.
 */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_DATAGRAM 65507
#define HEADER 4
#define GIVE_UP 5

static long number(const char *text, long low, long high, const char *what)
{
    char *end;
    long value = strtol(text, &end, 10);
    if (*text == '\0' || *end != '\0' || value < low || value > high) {
        fprintf(stderr, "sdnvirt-udp: %s must be a number from %ld to %ld, not %s\n", what, low, high, text);
        exit(2);
    }
    return value;
}

static long long now_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static void fill(unsigned char *datagram, uint32_t n, size_t size)
{
    uint32_t big = htonl(n);
    memcpy(datagram, &big, HEADER);
    for (size_t i = HEADER; i < size; i++)
        datagram[i] = (unsigned char)(n * 131u + i * 7u);
}

static int udp_socket(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) {
        perror("sdnvirt-udp: socket");
        exit(1);
    }
    return fd;
}

static int echo(long port, long seconds)
{
    static unsigned char buffer[MAX_DATAGRAM];
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = INADDR_ANY};
    int fd = udp_socket();
    long echoed = 0;
    if (bind(fd, (struct sockaddr *)&address, sizeof address) < 0) {
        perror("sdnvirt-udp: bind");
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    struct pollfd readable = {.fd = fd, .events = POLLIN};
    while (poll(&readable, 1, seconds * 1000) > 0) {
        struct sockaddr_in sender;
        socklen_t length = sizeof sender;
        ssize_t got = recvfrom(fd, buffer, sizeof buffer, 0, (struct sockaddr *)&sender, &length);
        if (got < 0)
            continue;
        if (sendto(fd, buffer, got, 0, (struct sockaddr *)&sender, length) == got)
            echoed++;
    }
    printf("echoed %ld\n", echoed);
    return 0;
}

static int send_datagrams(const char *host, long port, long count, long size, long wait_ms)
{
    static unsigned char sent[MAX_DATAGRAM], got[MAX_DATAGRAM + 1], expected[MAX_DATAGRAM];
    struct sockaddr_in target = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, host, &target.sin_addr) != 1) {
        fprintf(stderr, "sdnvirt-udp: HOST must be an IPv4 address, not %s\n", host);
        return 2;
    }
    char *back = calloc(count, 1);
    if (back == NULL) {
        perror("sdnvirt-udp: calloc");
        return 1;
    }
    int fd = udp_socket();
    long echoed = 0, corrupt = 0, sent_count = 0, missed = 0;
    long long began = now_ms();
    for (long n = 0; n < count && missed < GIVE_UP; n++) {
        fill(sent, n, size);
        /* one that cannot leave (no route, no neighbour) is simply not echoed */
        sendto(fd, sent, size, 0, (struct sockaddr *)&target, sizeof target);
        sent_count++;
        long long deadline = now_ms() + wait_ms;
        struct pollfd readable = {.fd = fd, .events = POLLIN};
        while (!back[n]) {
            long long left = deadline - now_ms();
            if (left <= 0 || poll(&readable, 1, (int)left) <= 0)
                break;
            struct sockaddr_in sender;
            socklen_t length = sizeof sender;
            ssize_t length_got = recvfrom(fd, got, sizeof got, 0, (struct sockaddr *)&sender, &length);
            if (length_got < 0 || sender.sin_addr.s_addr != target.sin_addr.s_addr || sender.sin_port != target.sin_port)
                continue;
            uint32_t big, echoed_n;
            memcpy(&big, got, HEADER);
            echoed_n = ntohl(big);
            if (length_got == size && echoed_n < (uint32_t)count) {
                fill(expected, echoed_n, size);
                if (memcmp(got, expected, size) == 0) {
                    if (!back[echoed_n]) {
                        back[echoed_n] = 1;
                        echoed++;
                    }
                    continue;
                }
            }
            corrupt++;
        }
        missed = back[n] ? 0 : missed + 1;
    }
    printf("sent=%ld echoed=%ld corrupt=%ld size=%ld ms=%lld\n", sent_count, echoed, corrupt, size, now_ms() - began);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "echo") == 0)
        return echo(number(argv[2], 1, 65535, "PORT"), number(argv[3], 1, 86400, "SECONDS"));
    if ((argc == 6 || argc == 7) && strcmp(argv[1], "send") == 0)
        return send_datagrams(argv[2], number(argv[3], 1, 65535, "PORT"), number(argv[4], 1, 1000000, "COUNT"),
                              number(argv[5], HEADER, MAX_DATAGRAM, "SIZE"),
                              argc == 7 ? number(argv[6], 1, 60000, "WAIT_MS") : 1000);
    fprintf(stderr, "usage: sdnvirt-udp echo PORT SECONDS\n"
                    "       sdnvirt-udp send HOST PORT COUNT SIZE [WAIT_MS]\n");
    return 2;
}
