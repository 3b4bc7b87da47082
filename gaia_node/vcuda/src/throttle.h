/* Compute-share throttle of libvcuda (owner: V2).
 *
 * hooks.c calls these around every kernel-launch path (cuLaunchKernel(_ptsz),
 * cuLaunchKernelEx(_ptsz), cuLaunchCooperativeKernel(_ptsz), cuGraphLaunch(_ptsz)).
 * The throttle keeps the container's share of device time in a shared file next to
 * the container's region (region_path + ".sm"), so every process of the container
 * draws on one budget.
 */
#ifndef VCUDA_THROTTLE_H
#define VCUDA_THROTTLE_H

struct vcuda_config;

void vcuda_throttle_init(const struct vcuda_config *cfg);      /* once, after config load */
void vcuda_throttle_before_launch(void *stream);               /* may sleep to keep the share */
void vcuda_throttle_after_launch(void *stream, int result);    /* account the launch */

#endif
