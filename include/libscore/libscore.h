/**
 * @file libscore.h
 * @brief Umbrella header: includes every stable libscore header.
 *
 * @code
 * #include <libscore/libscore.h>
 * assert(score_version_number() == SCORE_VERSION_NUMBER);
 * @endcode
 */
#ifndef LIBSCORE_LIBSCORE_H
#define LIBSCORE_LIBSCORE_H

#include "common.h"
#include <libscore/version.h>
#include "status.h"
#include "param.h"
#include "rng.h"
#include "schedule.h"
#include "model.h"
#include "classifier.h"
#include "energy.h"
#include "unet.h"
#include "sde.h"
#include "loss.h"
#include "train.h"
#include "step.h"
#include "control.h"
#include "evolve.h"
#include "sampler.h"
#include "likelihood.h"
#include "genmodel.h"
#include "comm.h"

#endif /* LIBSCORE_LIBSCORE_H */
