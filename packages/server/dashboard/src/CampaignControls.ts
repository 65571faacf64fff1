/**
 * The campaign view's buttons, each calling a campaign RPC: pause (optionally cascading to the
 * running batches), resume, cancel, approve and reject (with the note), retry-failed (its dry run
 * shown first, per batch) and the concurrency. A button is enabled only in the states whose row of
 * the domain's `campaignAllowed` accepts its command.
 *
 * @since 0.5.0
 */
import * as Tags from "@effect-batch/domain/Tags"
import { failedIn, sayIn } from "./App.js"
import { campaignUi, concurrencyOf, refreshCampaign } from "./Campaigns.js"
import type { Answer, RpcTag } from "./Client.js"
import { rpc } from "./Client.js"
import type { Question } from "./Controls.js"
import { askThen, confirmRedrive, enableButtons, plural, wireButtons } from "./Controls.js"
import { $ } from "./Dom.js"

/** The commands of the campaign view that take a note, and the RPC each calls. */
const noted = {
  pause: { rpc: "PauseCampaign", command: "Pause" },
  resume: { rpc: "ResumeCampaign", command: "Resume" },
  cancel: { rpc: "CancelCampaign", command: "Cancel" },
  approve: { rpc: "ApproveCampaign", command: "Approve" },
  reject: { rpc: "RejectCampaign", command: "Reject" }
} as const satisfies Record<string, { readonly rpc: RpcTag; readonly command: Tags.CampaignCommand }>

type Noted = keyof typeof noted

/** Each button (its `data-campaign-action`): the RPC it calls and the command that RPC runs. */
const actions = {
  ...noted,
  retry: { rpc: "RetryFailedCampaign", command: "RetryFailed" },
  concurrency: { rpc: "UpdateCampaignConfig", command: "UpdateConfig" }
} as const satisfies Record<string, { readonly rpc: RpcTag; readonly command: Tags.CampaignCommand }>

type Action = keyof typeof actions

const isAction = (action: string): action is Action => Object.hasOwn(actions, action)

const isNoted = (action: string): action is Noted => Object.hasOwn(noted, action)

const questions: Partial<Record<Noted, Question>> = {
  cancel: [
    "Cancel this campaign?",
    "Every batch that has not settled is cancelled. This cannot be undone.",
    "Cancel campaign"
  ],
  reject: ["Reject the campaign?", "It ends as Rejected; its failed items can be retried later.", "Reject"]
}

const campaignAllows = (action: string): boolean => {
  const c = campaignUi.campaign
  return c !== null && isAction(action) && Tags.campaignAllowed[c.state._tag].includes(actions[action].command)
}

/** Enables the campaign view's buttons that its state allows. */
export const enableCampaignActions = (): void => enableButtons("campaign-action", campaignAllows)

const campaignSay = (text: string): void => sayIn("campaign-message", text)

const campaignCommand = (action: Noted): Promise<unknown> => {
  const id = campaignUi.id
  if (id === null) return Promise.resolve()
  const rpcTag = noted[action].rpc
  const note = $("campaign-note", HTMLInputElement)
  const payload: { campaignId: string; note: string; cascade?: boolean } = { campaignId: id, note: note.value }
  if (rpcTag === "PauseCampaign") payload.cascade = $("campaign-cascade", HTMLInputElement).checked
  return askThen(questions[action], () =>
    rpc(rpcTag, payload).then((c) => {
      note.value = ""
      campaignSay(rpcTag + ": the campaign is now " + c.state._tag + ".")
      return refreshCampaign()
    }))
}

/** The dry run's keys, each with its batch; "… and n more" where a batch has more than it lists. */
const planKeys = (plan: Answer<"RetryFailedCampaign">): Array<string> => {
  const keys: Array<string> = []
  for (const b of plan.batches) {
    for (const key of b.keys) keys.push("batch " + b.index + ": " + key)
    if (b.count > b.keys.length) keys.push("batch " + b.index + ": … and " + (b.count - b.keys.length) + " more")
  }
  return keys
}

const retryFailedCampaign = (): Promise<unknown> => {
  const id = campaignUi.id
  if (id === null) return Promise.resolve()
  return rpc("RetryFailedCampaign", { campaignId: id, dryRun: true }).then((plan) => {
    const outcome = "only they run again, in " + plural(plan.batches.length, "batch", "batches") + ", in a new round."
    return confirmRedrive(
      plan.items,
      planKeys(plan),
      outcome,
      "Run " + plan.items + " again",
      () =>
        rpc("RetryFailedCampaign", { campaignId: id, dryRun: false }).then((done) => {
          campaignSay(
            "Running " + plural(done.items, "item") + " of " + plural(done.batches.length, "batch", "batches") +
              " again."
          )
          return refreshCampaign()
        })
    )
  })
}

const updateCampaignConcurrency = (): Promise<unknown> => {
  const id = campaignUi.id
  if (id === null) return Promise.resolve()
  const patch = { concurrency: Number($("campaign-concurrency", HTMLInputElement).value) }
  return rpc("UpdateCampaignConfig", { campaignId: id, patch }).then((c) => {
    campaignSay("The campaign now runs " + plural(concurrencyOf(c), "batch", "batches") + " at once.")
    return refreshCampaign()
  })
}

/** Wires the campaign view's buttons. */
export const init = (): void => {
  wireButtons(
    "campaign-action",
    (action) =>
      action === "retry" ? retryFailedCampaign() : action === "concurrency" ?
        updateCampaignConcurrency() :
        isNoted(action)
        ? campaignCommand(action)
        : Promise.resolve(),
    failedIn("campaign-message"),
    campaignAllows
  )
}
