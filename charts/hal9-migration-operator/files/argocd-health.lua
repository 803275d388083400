-- Argo CD health check for migration.hal9.ai/Hal9Migration (docs/argocd.md installs it as
-- resource.customizations.health.migration.hal9.ai_Hal9Migration in argocd-cm).
--
-- Argo CD runs it with gopher-lua (Lua 5.1) and only the base, table, package and a safe os library:
-- no string or math library, so nothing here calls string.* or a method on a string. The global
-- `obj` is the live object; numbers may arrive as strings, hence tonumber.
--
-- It reads the operator's kstatus conditions (Ready, Reconciling, Stalled, Degraded, Paused), the same
-- ones `kubectl hal9 status` judges, and maps them as follows:
--   not observed yet (no status, the CRD's AwaitingOperator placeholder, or observedGeneration behind
--     metadata.generation)                                     -> Progressing
--   Stalled=True (deadline, abort, automatic rollback, failed state migration, invalid spec, missing
--     object) or Degraded=True (a rollback trigger firing)     -> Degraded
--   Ready=True for this generation (at the declared target)    -> Healthy
--   Paused=True on the way (spec.paused or `kubectl hal9 pause`) -> Suspended
--   anything else (walking, waiting for a step or a gate)      -> Progressing
-- Without the first rule Argo CD would call an object the operator has not seen yet Healthy, and a
-- sync wave would move on before the migration even started.

local function condition(type_)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == type_ then
      return c
    end
  end
  return nil
end

local function is_true(c)
  return c ~= nil and c.status == "True"
end

-- "Reason: message", or the reason alone when the operator wrote no message.
local function describe(c)
  if c.message == nil or c.message == "" then
    return c.reason
  end
  return c.reason .. ": " .. c.message
end

local hs = {}
local generation = tonumber(obj.metadata.generation)

if obj.status == nil or obj.status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator: this migration has no status yet"
  return hs
end

local observed = tonumber(obj.status.observedGeneration)
if observed == nil or observed < 0 then
  local reconciling = condition("Reconciling")
  hs.status = "Progressing"
  if reconciling ~= nil and reconciling.message ~= nil and reconciling.message ~= "" then
    hs.message = "Waiting for the operator: " .. reconciling.message
  else
    hs.message = "Waiting for the operator to observe this migration"
  end
  return hs
end
if generation ~= nil and observed < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. generation
    .. " (it has seen " .. observed .. ")"
  return hs
end

local stalled = condition("Stalled")
if is_true(stalled) then
  hs.status = "Degraded"
  hs.message = "Stalled: " .. describe(stalled)
  return hs
end

local degraded = condition("Degraded")
if is_true(degraded) then
  hs.status = "Degraded"
  hs.message = "Degraded: " .. describe(degraded)
  return hs
end

local ready = condition("Ready")
local ready_generation = nil
if ready ~= nil then
  ready_generation = tonumber(ready.observedGeneration)
end
if is_true(ready) and (ready_generation == nil or generation == nil or ready_generation == generation) then
  hs.status = "Healthy"
  hs.message = describe(ready)
  return hs
end

local paused = condition("Paused")
if is_true(paused) then
  hs.status = "Suspended"
  -- Ready's message says where it holds and what it would do next; Paused's, only who paused it.
  if ready ~= nil and ready.message ~= nil and ready.message ~= "" then
    hs.message = paused.reason .. ": " .. ready.message
  else
    hs.message = describe(paused)
  end
  return hs
end

hs.status = "Progressing"
local reconciling = condition("Reconciling")
if is_true(reconciling) then
  hs.message = describe(reconciling)
elseif ready ~= nil then
  hs.message = describe(ready)
else
  hs.message = "Waiting for the operator to report progress"
end
return hs
