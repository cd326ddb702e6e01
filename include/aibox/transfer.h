/*
 * libaibox — transfer learning: a pretrained model cut at a feature layer,
 * with a new classification head for one's own classes (what
 * `aibox-train --backbone` does). Included at the end of aibox.h, after
 * aibox/data.h whose datasets and loaders it uses; the conventions of
 * aibox.h hold.
 *
 * The calls, in the order a program makes them:
 *   aibox_transfer_cut        where the backbone is cut (also to check it early)
 *   aibox_transfer_build      the new model: trunk -> [global average pool] -> [dropout] -> dense,
 *                             with its metadata (backbone, preprocessing, class names)
 * then either aibox_train on the whole model (with aibox_loader_source batches), or, when
 * the trunk is frozen and the images are not augmented (the trunk's output is then the
 * same every epoch), the cheaper
 *   aibox_transfer_features_create   the trunk's features of every image, computed once
 *   aibox_transfer_train_head        the head trained on them, its weights put back into the model
 *   aibox_transfer_features_free
 */
#ifndef AIBOX_TRANSFER_H
#define AIBOX_TRANSFER_H

#include "../aibox.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A folder dataset (aibox/data.h; declared again here, as C11 allows, since
 * data.h may be the header being read when aibox.h includes this one). */
typedef struct aibox_dataset aibox_dataset;

/* How a backbone becomes a classifier. A zeroed struct: cut at the
 * embedding (aibox_model_embedding_node), no dropout, the trunk trained too,
 * pretrained weights, seed 0, no name. */
typedef struct aibox_transfer_opts {
    /* The cut, by at most one of these three (more is AIBOX_E_INVALID):       */
    int node;         /* > 0: this node of the backbone                          */
    const char *tap;  /* a tap name: the backbone's int metadata AIBOX_META_TAP_PREFIX + tap
                         ("layer3"), or a node index written in decimal ("55", as
                         aibox-train --tap takes it)                              */
    int stride;       /* > 0: the end of the stage at input size / stride
                         (aibox_model_stride_node)                                */
    /* none of them: the embedding before the backbone's classifier, its global
       pooling (aibox_model_embedding_node)                                       */
    float dropout;    /* rate of the dropout before the dense head; 0: none      */
    int freeze;       /* 1: every trunk node is frozen (only the head trains); 0: they train too
                         (a backbone's own frozen flags are cleared)              */
    int from_scratch; /* 1: the trunk's weights are drawn afresh from seed (the same
                         architecture, no pretraining: the baseline for pretrained weights) */
    uint64_t seed;    /* the head's initial weights (and the trunk's from scratch) */
    const char *name; /* the backbone's name (e.g. its file), used in messages and stored as
                         "aibox.backbone" (when it is valid UTF-8); NULL: "the backbone", not stored */
} aibox_transfer_opts;

/* What aibox_transfer_build made. */
typedef struct aibox_transfer_info {
    int cut;          /* the backbone's node the trunk ends at */
    int feature_node; /* in the new model: the feature vector the head reads (the cut's copy,
                         or the global average pool added after a spatial cut) */
    int head_node;    /* in the new model: the dense layer, its output */
} aibox_transfer_info;

/* The backbone node o (NULL: a zeroed struct) cuts at (>= 1), or a negative
 * status (-AIBOX_E_...) with a message in err: AIBOX_E_NOTFOUND when the tap
 * name, the stride's stage or an embedding does not exist (the message names
 * the tap or stride and the backbone), AIBOX_E_INVALID for a node out of
 * range or more than one rule. */
AIBOX_API int aibox_transfer_cut(const aibox_model *backbone, const aibox_transfer_opts *o, aibox_error *err);

/* A new finished model: backbone's nodes up to the cut (aibox_model_extract:
 * their weights, statistics and metadata, taps renumbered), then a global
 * average pool when the cut's output is larger than 1x1, a dropout when
 * o->dropout > 0, and dense(classes) initialised from o->seed. The trunk's
 * nodes are frozen or not as o->freeze says. The metadata make it
 * self-describing: "aibox.backbone" (o->name), "aibox.backbone.cut" (the
 * backbone's node), "aibox.backbone.frozen" (0/1), "aibox.backbone.init"
 * ("pretrained" or "random"), the backbone's preprocessing (input size,
 * channels, resize, mean/std: aibox_preproc_from_model), AIBOX_META_CLASS_NAMES
 * (class_names, classes of them; NULL: an empty list, the classes unnamed:
 * the backbone's own names never carry over) and AIBOX_META_TASK "classify".
 * info (may be NULL) receives the node indices. The backbone is not changed;
 * *m is NULL on failure. */
AIBOX_API aibox_status aibox_transfer_build(aibox_model **m, const aibox_model *backbone, int classes,
                                            const char *const *class_names, const aibox_transfer_opts *o,
                                            aibox_transfer_info *info, aibox_error *err);

/* ------------------------------------------------------------------ cached features */
/* The features of a dataset's images as a model's trunk gives them, held in
 * memory for training the head: what the head reads is computed once per image
 * instead of once per image and epoch. */
typedef struct aibox_transfer_features aibox_transfer_features;

/* Which images, and how the head will be served them. A zeroed struct: the
 * validation split, batches of 32, seed 0, default threads. */
typedef struct aibox_transfer_features_opts {
    int batch;      /* the head's training batch (as aibox_train's train_batch); 0: 32. The trunk
                       runs on at most 16 images at a time (its activations are large) */
    int validation; /* 0: the validation split's images (none when it is empty); 1: the training
                       images themselves (the AI-Box protocol); -1: none */
    uint64_t seed;  /* of the training features' per-epoch shuffle */
    int threads;    /* 0: aibox_default_num_threads() */
} aibox_transfer_features_opts;

typedef struct aibox_transfer_features_stats {
    int dim;        /* values per image */
    int train, val; /* images whose features are held (val: 0 without validation) */
    double seconds; /* wall time of the computation */
} aibox_transfer_features_stats;

/* Runs m from its input to the node its head reads (see
 * aibox_transfer_train_head) on every image of ds's training split, and of
 * the validation images o chooses (NULL: a zeroed struct), through pp (NULL:
 * the preprocessing stored in m; its shape is m's input) in split order, never augmented, in an
 * inference context with frozen weights (aibox_ctx_freeze_weights; batch
 * norm with its running statistics). stats (may be NULL) receives the counts
 * and the time. The result borrows nothing: m and ds may go. */
AIBOX_API aibox_status aibox_transfer_features_create(aibox_transfer_features **f, const aibox_model *m,
                                                      const aibox_dataset *ds, const aibox_preproc *pp,
                                                      const aibox_transfer_features_opts *o,
                                                      aibox_transfer_features_stats *stats, aibox_error *err);
AIBOX_API void aibox_transfer_features_free(aibox_transfer_features **f);

/* Trains m's head on cached features. m ends in a dense layer (its output)
 * reading the feature node, optionally through one dropout; every other node
 * with parameters must be frozen (else AIBOX_E_STATE: train the whole model
 * with aibox_train). The head alone becomes a model (input: the feature
 * vector; [dropout] -> dense with m's head weights as its initial weights and
 * m's class names), aibox_train trains it on f (training features reshuffled
 * per epoch from f's seed, in batches of f's batch; validation features in
 * order) with o and threads as given, so o->out_dir's checkpoints hold that
 * head model and o->resume takes one; then its weights are copied into m's
 * head. res as aibox_train's (its seconds exclude the features).
 * Versus aibox_train on the whole frozen model with the same batches: the
 * same training, to float rounding (a frozen-weights inference context may
 * compute convolutions another way), for trunks without batch norm; one in
 * training mode normalises with batch statistics, the cached features with
 * the running ones. f is not changed: several heads may be trained on it. */
AIBOX_API aibox_status aibox_transfer_train_head(aibox_model *m, const aibox_transfer_features *f,
                                                 const aibox_train_opts *o, int threads, aibox_train_result *res,
                                                 aibox_error *err);

#ifdef __cplusplus
}
#endif
#endif
