/**
 * The campaign view's buttons, each calling a campaign RPC: pause (optionally cascading to the
 * running batches), resume, cancel, approve and reject (with the note), retry-failed (its dry run
 * shown first, per batch) and the concurrency. A button is enabled only in the states whose row of
 * `CampaignTransition.allowed` accepts its command.
 *
 * @since 0.4.0
 */
import type { CampaignCommand, CampaignRpcs } from "@effect-batch/domain"
import { CampaignTransition } from "@effect-batch/domain"
import type * as Rpc from "@effect/rpc/Rpc"
import type * as RpcGroup from "@effect/rpc/RpcGroup"

type RpcTag = Rpc.Tag<RpcGroup.Rpcs<typeof CampaignRpcs.CampaignRpcs>>

/** Each button (its `data-campaign-action`): the RPC it calls and the command that RPC runs. */
const actions = {
  pause: { rpc: "PauseCampaign", command: "Pause" },
  resume: { rpc: "ResumeCampaign", command: "Resume" },
  cancel: { rpc: "CancelCampaign", command: "Cancel" },
  approve: { rpc: "ApproveCampaign", command: "Approve" },
  reject: { rpc: "RejectCampaign", command: "Reject" },
  retry: { rpc: "RetryFailedCampaign", command: "RetryFailed" },
  concurrency: { rpc: "UpdateCampaignConfig", command: "UpdateConfig" }
} satisfies Record<string, { readonly rpc: RpcTag; readonly command: CampaignCommand.Tag }>

/**
 * Browser JavaScript, run after `Campaigns.script` in the same function scope.
 *
 * @since 0.4.0
 */
export const script = String.raw`
var CAMPAIGN_ACTIONS = ${JSON.stringify(actions)};
var CAMPAIGN_ALLOWED = ${JSON.stringify(CampaignTransition.allowed)};
var CAMPAIGN_QUESTIONS = {
  cancel: ["Cancel this campaign?", "Every batch that has not settled is cancelled. This cannot be undone.",
    "Cancel campaign"],
  reject: ["Reject the campaign?", "It ends as Rejected; its failed items can be retried later.", "Reject"]
};

function campaignAllows(action) {
  var c = campaignUi.campaign;
  return c !== null && CAMPAIGN_ALLOWED[c.state._tag].indexOf(CAMPAIGN_ACTIONS[action].command) >= 0;
}

function enableCampaignActions() { enableButtons("campaign-action", campaignAllows); }

function campaignSay(text) { sayIn("campaign-message", text); }

function campaignCommand(action) {
  var id = campaignUi.id;
  var rpcTag = CAMPAIGN_ACTIONS[action].rpc;
  var payload = { campaignId: id, note: $("campaign-note").value };
  if (action === "pause") payload.cascade = $("campaign-cascade").checked;
  return askThen(CAMPAIGN_QUESTIONS[action], function() {
    return rpc(rpcTag, payload).then(function(c) {
      $("campaign-note").value = "";
      campaignSay(rpcTag + ": the campaign is now " + c.state._tag + ".");
      return refreshCampaign();
    });
  });
}

/** The dry run's keys, each with its batch; "… and n more" where a batch has more than it lists. */
function planKeys(plan) {
  var keys = [];
  plan.batches.forEach(function(b) {
    b.keys.forEach(function(key) { keys.push("batch " + b.index + ": " + key); });
    if (b.count > b.keys.length) keys.push("batch " + b.index + ": … and " + (b.count - b.keys.length) + " more");
  });
  return keys;
}

function retryFailedCampaign() {
  var id = campaignUi.id;
  return rpc("RetryFailedCampaign", { campaignId: id, dryRun: true }).then(function(plan) {
    var outcome = "only they run again, in " + plural(plan.batches.length, "batch", "batches") + ", in a new round.";
    return confirmRedrive(plan.items, planKeys(plan), outcome, "Run " + plan.items + " again", function() {
      return rpc("RetryFailedCampaign", { campaignId: id, dryRun: false }).then(function(done) {
        campaignSay("Running " + plural(done.items, "item") + " of " + plural(done.batches.length, "batch", "batches") +
          " again.");
        return refreshCampaign();
      });
    });
  });
}

function updateCampaignConcurrency() {
  var patch = { concurrency: Number($("campaign-concurrency").value) };
  return rpc("UpdateCampaignConfig", { campaignId: campaignUi.id, patch: patch }).then(function(c) {
    campaignSay("The campaign now runs " + plural(c.config.concurrency, "batch", "batches") + " at once.");
    return refreshCampaign();
  });
}

document.addEventListener("DOMContentLoaded", function() {
  wireButtons("campaign-action", function(action) {
    return action === "retry" ? retryFailedCampaign() : action === "concurrency" ? updateCampaignConcurrency() :
      campaignCommand(action);
  }, failedIn("campaign-message"), campaignAllows);
});
`
