/**
 * The dashboard's browser script, bundled to `dashboard/app.js`: once the page is loaded, wires the
 * batch view and starts it (its start signs the page in), then the limiters panel and the campaigns.
 *
 * @since 0.5.0
 */
import * as App from "./App.js"
import * as CampaignControls from "./CampaignControls.js"
import * as Campaigns from "./Campaigns.js"
import * as Limiters from "./Limiters.js"

document.addEventListener("DOMContentLoaded", () => {
  App.init()
  Limiters.init()
  Campaigns.init()
  CampaignControls.init()
})
