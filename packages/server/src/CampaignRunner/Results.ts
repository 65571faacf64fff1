/**
 * A campaign's merged results: its children in index order, each child's items in key order.
 */
import { CampaignViews } from "@effect-batch/domain"
import type { CampaignId, ItemState } from "@effect-batch/domain"
import type { CampaignRepo } from "@effect-batch/tables/CampaignRepo"
import type { ItemReader } from "@effect-batch/tables/ItemReader"
import type { SqlError } from "@effect/sql/SqlError"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"

const pageSize = 100

/** Every item's outcome ordered by (batch index, item key), or only those in `state`. */
export const results = (
  repo: CampaignRepo,
  reader: ItemReader,
  campaignId: CampaignId.CampaignId,
  state?: ItemState.Tag
): Stream.Stream<CampaignViews.CampaignResult, SqlError> =>
  Stream.paginateChunkEffect(-1, (after) =>
    Effect.map(repo.children.page(campaignId, after, pageSize), (page) => {
      const last = page[page.length - 1]
      return [
        Chunk.unsafeFromArray(page),
        page.length < pageSize || last === undefined ? Option.none() : Option.some(last.index)
      ] as const
    })).pipe(
      Stream.flatMap((child) =>
        reader.results(child.record.id).pipe(
          Stream.filter((r) => state === undefined || r.state === state),
          Stream.map((r) =>
            CampaignViews.CampaignResult.make({
              batchIndex: child.index,
              batchId: child.record.id,
              key: r.key,
              state: r.state,
              ...(r.output === undefined ? {} : { output: r.output }),
              ...(r.error === undefined ? {} : { error: r.error })
            })
          )
        )
      )
    )
