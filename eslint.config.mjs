import * as effectEslint from "@effect/eslint-plugin"
import tseslint from "typescript-eslint"

export default tseslint.config(
  {
    ignores: [
      "**/build/**",
      "**/dist/**",
      "bench/.build/**",
      "**/node_modules/**",
      ".effect-batch/**",
      "docs/**",
      "packages/server/dashboard/app.js"
    ]
  },
  {
    files: ["**/*.ts"],
    extends: [tseslint.configs.base],
    rules: {
      "no-restricted-syntax": ["error", {
        selector: "ImportDeclaration[source.value='effect'] ImportSpecifier",
        message: "Import Effect modules by namespace: import * as Effect from \"effect/Effect\""
      }]
    }
  },
  ...effectEslint.configs.dprint,
  {
    rules: {
      "@effect/dprint": ["error", {
        config: {
          indentWidth: 2,
          lineWidth: 120,
          semiColons: "asi",
          quoteStyle: "alwaysDouble",
          trailingCommas: "never",
          operatorPosition: "maintain",
          "arrowFunction.useParentheses": "force"
        }
      }]
    }
  }
)
